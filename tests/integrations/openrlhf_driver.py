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


def client_08(url: str) -> dict:
    """0.8: remote_rm_fn posts the batch and returns torch.tensor(response["rewards"])."""
    import openrlhf
    from openrlhf.utils.remote_rm_utils import remote_rm_fn

    queries = ["<pad>" + PROMPT + r + "</s><pad>" for r in RESPONSES]
    rewards = remote_rm_fn(url, queries, [PROMPT] * len(queries), ["42"] * len(queries))
    return {"version": openrlhf.__file__, "rewards": rewards.tolist(), "shape": list(rewards.shape)}


if __name__ == "__main__":
    version, url = sys.argv[1], sys.argv[2]
    result = client_011(url) if version == "0.11" else client_08(url)
    print("RESULT " + json.dumps(result))
