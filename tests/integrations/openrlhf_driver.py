"""Runs OpenRLHF's own remote-reward client code against a live /get_reward (see
test_openrlhf.py). Usage: python openrlhf_driver.py <0.11|0.8> <url>. Prints one JSON line."""

from __future__ import annotations

import asyncio
import json
import sys

PROMPT = "<|im_start|>user\nWhat is 40 + 2?<|im_end|>\n<|im_start|>assistant\n"
RESPONSES = ["40 plus 2 is 42. \\boxed{42}", "hmm, wait. \\boxed{41}"]


def client_011(url: str) -> dict:
    """0.11: SingleTurnAgentExecutor posts one query and reads rewards / scores / extra_logs."""
    import openrlhf
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    executor = SingleTurnAgentExecutor(url)
    answers = []
    for response in RESPONSES:
        query = PROMPT + response + "<|im_end|>"
        infos = asyncio.run(executor._fetch_rewards_via_http([query], [PROMPT], ["42"]))
        info = infos[0]
        # What execute() keeps from the answer.
        score = info.get("scores")
        if score is None:
            score = info.get("rewards")
        answers.append(
            {
                "reward": info.get("rewards"),
                "scores": score,
                "extra_logs": info.get("extra_logs") or {},
            }
        )
    return {"version": openrlhf.__file__, "answers": answers}


def client_011_sequence(url: str, n: int) -> dict:
    """0.11: n different questions, one after the other, as n rollouts would send them; a
    failed one is what OpenRLHF sees after its 5 tries (the sample keeps reward None)."""
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    executor = SingleTurnAgentExecutor(url)
    calls = []
    for i in range(n):
        prompt = f"<|im_start|>user\nWhat is 40 + {i}?<|im_end|>\n<|im_start|>assistant\n"
        query = prompt + f"so \\boxed{{{40 + i}}}<|im_end|>"
        try:
            info = asyncio.run(executor._fetch_rewards_via_http([query], [prompt], [str(40 + i)]))
            calls.append(
                {"rewards": info[0].get("rewards"), "extra_logs": info[0].get("extra_logs")}
            )
        except RuntimeError as err:
            calls.append({"error": str(err)})
    return {"calls": calls}


def client_08(url: str) -> dict:
    """0.8: remote_rm_fn posts the batch and returns torch.tensor(response["rewards"])."""
    import openrlhf
    from openrlhf.utils.remote_rm_utils import remote_rm_fn

    queries = ["<pad>" + PROMPT + r + "</s><pad>" for r in RESPONSES]
    rewards = remote_rm_fn(url, queries, [PROMPT] * len(queries), ["42"] * len(queries))
    return {"version": openrlhf.__file__, "rewards": rewards.tolist(), "shape": list(rewards.shape)}


if __name__ == "__main__":
    version, url = sys.argv[1], sys.argv[2]
    if version == "0.11-sequence":
        result = client_011_sequence(url, int(sys.argv[3]))
    elif version == "0.11":
        result = client_011(url)
    else:
        result = client_08(url)
    print("RESULT " + json.dumps(result))
