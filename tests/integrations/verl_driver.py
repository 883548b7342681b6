"""Runs inside a Python environment with verl installed (see test_verl.py): verl's own
DataProto and reward managers call the sigreward reward functions against a live server.

Usage: python verl_driver.py <case> ; SIGREWARD_URL / SIGREWARD_RUN_ID set by the caller.
Prints one JSON document with what the test checks.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
from verl import DataProto
from verl_cases import INDEX, PROMPTS, RESPONSES, TRUTHS  # noqa: E402  (next to this file)


def tokenizer() -> PreTrainedTokenizerFast:
    return tokenizer_with(PROMPTS)


def tokenizer_with(prompts: list[str]) -> PreTrainedTokenizerFast:
    words = ["<pad>", "</s>", "<unk>"]
    for text in RESPONSES + prompts:
        for word in text.split():
            if word not in words:
                words.append(word)
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def batch(tok: PreTrainedTokenizerFast, extra: list[dict[str, Any]]) -> DataProto:
    """The layout of verl's rollout output: left-padded prompts, right-padded responses
    (with EOS), one attention mask over both."""
    pad = tok.pad_token_id
    prompt_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    response_ids = [
        tok(r, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for r in RESPONSES
    ]
    p_len = max(map(len, prompt_ids))
    r_len = max(map(len, response_ids)) + 2
    prompts = torch.tensor([[pad] * (p_len - len(p)) + p for p in prompt_ids])
    responses = torch.tensor([r + [pad] * (r_len - len(r)) for r in response_ids])
    mask = torch.tensor(
        [
            [0] * (p_len - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (r_len - len(r))
            for p, r in zip(prompt_ids, response_ids, strict=True)
        ]
    )
    return DataProto.from_dict(
        tensors={
            "prompts": prompts,
            "responses": responses,
            "input_ids": torch.cat([prompts, responses], dim=1),
            "attention_mask": mask,
        },
        non_tensors={
            "data_source": np.array(["openai/gsm8k"] * len(RESPONSES), dtype=object),
            "reward_model": np.array(
                [{"ground_truth": t, "style": "rule"} for t in TRUTHS], dtype=object
            ),
            "extra_info": np.array(extra, dtype=object),
        },
    )


def last_token_rewards(reward_tensor: torch.Tensor, data: DataProto) -> list[float]:
    p_len = data.batch["prompts"].shape[-1]
    lengths = data.batch["attention_mask"][:, p_len:].sum(-1).tolist()
    out = []
    for i, n in enumerate(lengths):
        row = reward_tensor[i]
        assert float(row.abs().sum() - row[n - 1].abs()) == 0.0, "reward outside the last token"
        out.append(float(row[n - 1]))
    return out


def case_legacy(step: int) -> dict[str, Any]:
    """verl <= 0.8 NaiveRewardManager (one call per sample) and BatchRewardManager."""
    from verl.workers.reward_manager import BatchRewardManager, NaiveRewardManager

    from sigreward_client.verl import compute_score, compute_score_batch

    tok = tokenizer()
    extra = [
        {"index": INDEX[i], "split": "train", "global_steps": step} for i in range(len(RESPONSES))
    ]
    mode = os.environ["DRIVER_MANAGER"]
    if mode == "naive":
        manager = NaiveRewardManager(tokenizer=tok, num_examine=0, compute_score=compute_score)
    else:
        manager = BatchRewardManager(
            tokenizer=tok, num_examine=0, compute_score=compute_score_batch
        )
    data = batch(tok, extra)
    out = manager(data, return_dict=True)
    return {
        "rewards": last_token_rewards(out["reward_tensor"], data),
        "extra": {k: [float(x) for x in v] for k, v in out["reward_extra_info"].items()},
    }


def case_reward_loop(step: int) -> dict[str, Any]:
    """verl 0.9 reward loop: its NaiveRewardManager awaits the coroutine reward function."""
    from omegaconf import OmegaConf
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls

    from sigreward_client.verl import compute_score_async

    tok = tokenizer()
    extra: list[dict[str, Any]] = [{"index": INDEX[i]} for i in range(len(RESPONSES))]
    if not os.environ.get("DRIVER_NO_STEP"):  # else the server counts the step
        for entry in extra:
            entry["global_steps"] = step
    data = batch(tok, extra)

    async def main() -> list[dict[str, Any]]:
        manager = get_reward_manager_cls("naive")(
            config=OmegaConf.create({}), tokenizer=tok, compute_score=compute_score_async
        )
        # RewardLoopWorker.compute_score_batch: one task per sample, gathered.
        return await asyncio.gather(
            *(manager.run_single(data[i : i + 1]) for i in range(len(data)))
        )

    results = asyncio.run(main())
    return {
        "rewards": [float(r["reward_score"]) for r in results],
        "extra": {
            k: [float(r["reward_extra_info"][k]) for r in results]
            for k in results[0]["reward_extra_info"]
        },
    }


def case_counting() -> dict[str, Any]:
    """No global_steps, one request per sample: the server counts the steps."""
    from sigreward_client.verl import compute_score

    scores = [
        compute_score("gsm8k", RESPONSES[i], TRUTHS[i], {"index": INDEX[i]})["score"]
        for i in range(len(RESPONSES))
    ]
    return {"scores": scores}


def case_agent_loop(step: int) -> dict[str, Any]:
    """verl's own agent loop end to end: ``AgentLoopWorker.generate_sequences`` runs the
    single-turn agent loop for each sample and, in it, the reward loop worker (verl's
    ``RewardLoopWorker`` with its naive reward manager) that awaits ``compute_score_async``.
    The step is only in ``batch.meta_info``: it reaches the reward function through the hook
    that ``VERL_USE_EXTERNAL_MODULES=sigreward_client.verl_hook`` installs, or not at all.

    Stand-ins for what needs GPUs or a cluster: the LLM server client answers each prompt with
    a fixed response, and the reward worker is called in process instead of through Ray."""
    import tempfile

    import verl
    from hydra import compose, initialize_config_dir
    from transformers import GPT2Config
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.workers.rollout.replica import TokenOutput

    n = len(PROMPTS)
    # The LLM stand-in answers a prompt text with its response: make every prompt text unique
    # (PROMPTS repeat: a prompt's rollouts).
    prompts = [f"{p} ({i})" for i, p in enumerate(PROMPTS)]
    answers = {prompts[i]: RESPONSES[i] for i in range(n)}
    tok = tokenizer_with(prompts)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    model_dir = tempfile.mkdtemp(prefix="verl-tiny-")
    tok.save_pretrained(model_dir)
    GPT2Config(
        vocab_size=len(tok),
        n_positions=128,
        n_embd=16,
        n_layer=1,
        n_head=2,
        architectures=["GPT2LMHeadModel"],
    ).save_pretrained(model_dir)
    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(
            config_name="ppo_trainer",
            overrides=[
                f"actor_rollout_ref.model.path={model_dir}",
                "actor_rollout_ref.rollout.name=vllm",
                "actor_rollout_ref.rollout.prompt_length=32",
                "actor_rollout_ref.rollout.response_length=32",
                "reward.custom_reward_function.path=pkg://sigreward_client.verl",
                "reward.custom_reward_function.name=compute_score_async",
            ],
        )

    class LLMServer:
        async def generate(self, request_id: str, prompt_ids: list[int], **kwargs: Any) -> Any:
            prompt = tok.decode(prompt_ids).strip()
            response = tok(answers[prompt], add_special_tokens=False)["input_ids"]
            return TokenOutput(token_ids=response + [tok.eos_token_id])

    class RewardWorkerHandle:
        """What AgentLoopWorker calls on a Ray actor handle: ``compute_score.remote(data)``."""

        def __init__(self, worker: RewardLoopWorker) -> None:
            class Method:
                def remote(self, data: DataProto) -> Any:
                    return worker.compute_score(data)

            self.compute_score = Method()

    def batch_for(validate: bool) -> DataProto:
        return DataProto.from_dict(
            non_tensors={
                "raw_prompt": np.array(
                    [[{"role": "user", "content": p}] for p in prompts], dtype=object
                ),
                "index": np.array(INDEX),
                "data_source": np.array(["openai/gsm8k"] * n, dtype=object),
                "reward_model": np.array(
                    [{"ground_truth": t, "style": "rule"} for t in TRUTHS], dtype=object
                ),
                "extra_info": np.array([{"index": i} for i in INDEX], dtype=object),
            },
            meta_info={"global_steps": step, "validate": validate},
        )

    async def main() -> list[DataProto]:
        reward_worker = RewardLoopWorker(config)  # binds the running loop, as in its actor
        worker = AgentLoopWorker(
            config, LLMServer(), reward_loop_worker_handles=[RewardWorkerHandle(reward_worker)]
        )
        return [
            await worker.generate_sequences(batch_for(False)),
            await worker.generate_sequences(batch_for(True)),
        ]

    train, validation = asyncio.run(main())
    return {
        "rewards": [float(x) for x in train.batch["rm_scores"].sum(-1)],
        "validation_rewards": [float(x) for x in validation.batch["rm_scores"].sum(-1)],
        "extra_keys": sorted(train.meta_info.get("reward_extra_keys", [])),
        "k": [float(x) for x in train.non_tensor_batch["sigreward_k"]],
    }


def case_hook() -> dict[str, Any]:
    """install_global_steps_hook puts the trajectory's step into the kwargs' extra_info."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

    from sigreward_client.verl import install_global_steps_hook

    seen: list[dict[str, Any]] = []

    async def original(
        self: Any,
        sampling_params: Any,
        trajectory: Any,
        *,
        agent_name: str,
        trace: bool = True,
        **kwargs: Any,
    ) -> str:
        seen.append({"agent_name": agent_name, **kwargs})
        return "done"

    AgentLoopWorker._run_agent_loop = original  # the method the hook wraps
    install_global_steps_hook()
    install_global_steps_hook()  # idempotent
    row = {"index": 3}
    out = asyncio.run(
        AgentLoopWorker._run_agent_loop(
            object(),
            {},
            {"step": 7, "sample_index": 0, "rollout_n": 0, "validate": False},
            agent_name="single_turn_agent",
            extra_info=row,
            raw_prompt=[],
        )
    )
    return {"out": out, "extra_info": seen[0]["extra_info"], "row_untouched": row == {"index": 3}}


def case_hook_env() -> dict[str, Any]:
    """VERL_USE_EXTERNAL_MODULES=sigreward_client.verl_hook installs the hook at verl import."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

    return {"installed": bool(getattr(AgentLoopWorker._run_agent_loop, "_sigreward_hook", False))}


def case_config() -> dict[str, Any]:
    """The example config's reward section, loaded the way verl's trainer loads it."""
    import inspect

    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    example = OmegaConf.load(os.environ["DRIVER_EXAMPLE_YAML"])
    fn = get_custom_reward_fn(OmegaConf.create({"reward": example.reward}))
    target = fn.args[0] if hasattr(fn, "args") else fn
    return {
        "name": target.__name__,
        "module": target.__module__,
        "coroutine": inspect.iscoroutinefunction(target),
    }


def main() -> None:
    case = sys.argv[1]
    step = int(os.environ.get("DRIVER_STEP", "0"))
    result = {
        "legacy": lambda: case_legacy(step),
        "reward_loop": lambda: case_reward_loop(step),
        "agent_loop": lambda: case_agent_loop(step),
        "counting": case_counting,
        "hook": case_hook,
        "hook_env": case_hook_env,
        "config": case_config,
    }[case]()
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
