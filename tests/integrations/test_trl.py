"""TRL: the reward function called exactly as GRPOTrainer calls it, then a real 2-step
GRPOTrainer run on a tiny local causal LM against a live server."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ServerProcess

from sigreward_client import RewardClient  # isort: skip  (path set up by the fixtures)
from sigreward_client.trl import completion_text, make_trl_reward_func, prompt_key


def _client(server: ServerProcess, **config: Any) -> RewardClient:
    client = RewardClient(server.base_url, f"trl-{uuid.uuid4().hex[:8]}")
    client.configure(significance="classifier", reference="group", **config)
    return client


def _call_like_grpo(
    func: Any, prompts: list[Any], completions: list[Any], step: int, **columns: Any
) -> Any:
    """GRPOTrainer._calculate_rewards: keyword arguments only, columns as per-completion lists."""
    from transformers import TrainerState

    state = TrainerState()
    state.global_step = step
    metrics: dict[str, list[float]] = {}
    extras: dict[str, list[Any]] = {}
    out = func(
        prompts=prompts,
        completions=completions,
        completion_ids=[[1] * (3 + i) for i in range(len(completions))],
        trainer_state=state,
        log_extra=lambda column, values: extras.setdefault(column, []).extend(values),
        log_metric=lambda name, value: metrics.setdefault(name, []).append(value),
        **columns,
    )
    return out, metrics, extras


def test_text_helpers() -> None:
    assert completion_text("plain") == "plain"
    conversation = [{"role": "assistant", "content": "so \\boxed{4}"}]
    assert completion_text(conversation) == "so \\boxed{4}"
    parts = [
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        }
    ]
    assert completion_text(parts) == "ab"
    assert prompt_key("p") == prompt_key("p") != prompt_key("q")
    assert prompt_key([{"role": "user", "content": "x"}]) == prompt_key(
        [{"content": "x", "role": "user"}]
    )


def test_standard_format_matches_the_sdk(classifier_server: ServerProcess) -> None:
    client = _client(classifier_server)
    func = make_trl_reward_func(client, name="sigreward_len")
    assert func.__name__ == "sigreward_len"
    prompts = ["What is 2+2?"] * 3 + ["What is 3*3?"] * 3
    completions = [
        "2 plus 2 is 4. \\boxed{4}",
        "hmm, wait. I think 2+2 = 4, so \\boxed{4}",
        "\\boxed{5}",
        "3 times 3 is 9. \\boxed{9}",
        "\\boxed{9}",
        "let me see, 3*3 is 6. \\boxed{6}",
    ]
    answers = ["4"] * 3 + ["9"] * 3
    rewards, metrics, extras = _call_like_grpo(
        func, prompts, completions, 5, answer=answers, task=["m"] * 6
    )
    assert len(rewards) == 6 and all(isinstance(r, float) for r in rewards)
    assert set(metrics) == {"sigreward_len/k", "sigreward_len/length_reward_mean"}
    assert len(extras["sigreward_len_length_reward"]) == 6

    # The same samples through the SDK directly (same step, groups from the prompts) on a twin run.
    twin = _client(classifier_server)
    direct = twin.score(
        5,
        [
            {"prompt_id": prompt_key(p), "response": c, "label": a, "num_tokens": 3 + i}
            for i, (p, c, a) in enumerate(zip(prompts, completions, answers, strict=True))
        ],
    )
    assert rewards == direct.rewards
    assert direct.correct == [True, True, False, True, True, False]
    view = client.finish_step(5)
    assert view.schedule.history[0].step == 5 and view.schedule.history[0].samples == 6


def test_conversational_format_and_correct_fn(classifier_server: ServerProcess) -> None:
    client = _client(classifier_server)
    func = make_trl_reward_func(
        client, correct_fn=lambda prompt, completion, **row: row["gold"] in completion
    )
    prompts = [[{"role": "user", "content": "Say hi"}]] * 2
    completions = [
        [{"role": "assistant", "content": "hi there"}],
        [{"role": "assistant", "content": "hello"}],
    ]
    rewards, _, _ = _call_like_grpo(func, prompts, completions, 0, gold=["hi", "hi"])
    twin = _client(classifier_server)
    direct = twin.score(
        0,
        [
            {
                "prompt_id": prompt_key(prompts[0]),
                "response": "hi there",
                "correct": True,
                "num_tokens": 3,
            },
            {
                "prompt_id": prompt_key(prompts[0]),
                "response": "hello",
                "correct": False,
                "num_tokens": 4,
            },
        ],
    )
    assert rewards == direct.rewards
    assert rewards[0] - direct.length_rewards[0] == pytest.approx(1.0)
    assert rewards[1] == pytest.approx(direct.length_rewards[1])


def test_missing_label_and_state_are_clear_errors(classifier_server: ServerProcess) -> None:
    func = make_trl_reward_func(_client(classifier_server))
    with pytest.raises(ValueError, match="no label column"):
        _call_like_grpo(func, ["p"], ["c"], 0, other=["x"])
    with pytest.raises(ValueError, match="trainer_state"):
        func(prompts=["p"], completions=["c"], completion_ids=[[1]], answer=["1"])


def _tiny_causal_lm(path: Path) -> Path:
    """A random 2-layer GPT-2 with a byte-level BPE tokenizer trained here (no hub)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [f"What is {a}+{b}? The answer is {a + b}." for a in range(12) for b in range(12)]
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        bos_token="<|endoftext|>",
    )
    fast.save_pretrained(str(path))
    config = GPT2Config(
        vocab_size=tok.get_vocab_size(),
        n_positions=128,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=fast.eos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    import torch

    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(str(path))
    return path


def test_grpo_trainer_two_steps(classifier_server: ServerProcess, tmp_path: Path) -> None:
    trl = pytest.importorskip("trl", reason="trl is not installed (requirements-integrations.txt)")
    from datasets import Dataset

    model_dir = _tiny_causal_lm(tmp_path / "tiny-gpt2")
    client = _client(classifier_server)
    calls: list[tuple[int, int]] = []
    inner = make_trl_reward_func(client)

    def reward_func(**kwargs: Any) -> list[float]:
        calls.append((kwargs["trainer_state"].global_step, len(kwargs["completions"])))
        return inner(**kwargs)

    reward_func.__name__ = inner.__name__
    dataset = Dataset.from_dict(
        {
            "prompt": [f"What is {a}+{a}?" for a in range(8)],
            "answer": [str(2 * a) for a in range(8)],
        }
    )
    args = trl.GRPOConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        max_steps=2,
        learning_rate=1e-4,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        seed=0,
        dataloader_num_workers=0,
    )
    trainer = trl.GRPOTrainer(
        model=str(model_dir),
        reward_funcs=[reward_func],
        args=args,
        train_dataset=dataset,
        processing_class=__import__("transformers").AutoTokenizer.from_pretrained(str(model_dir)),
    )
    trainer.train()
    assert [step for step, _ in calls] == [0, 1]
    assert all(n == 4 for _, n in calls)
    view = client.finish_step(1)
    assert [(h.step, h.samples) for h in view.schedule.history] == [(0, 4), (1, 4)]
    logged = [entry for entry in trainer.state.log_history if "rewards/sigreward/mean" in entry]
    assert len(logged) == 2


def _grpo_args(trl: Any, tmp_path: Path, **overrides: Any) -> Any:
    options: dict[str, Any] = {
        "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": 4,
        "num_generations": 4,
        "max_completion_length": 8,
        "max_steps": 3,
        "learning_rate": 1e-4,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "use_cpu": True,
        "bf16": False,
        "seed": 0,
        "dataloader_num_workers": 0,
    }
    options.update(overrides)
    return trl.GRPOConfig(**options)


def _dataset(n: int) -> Any:
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "prompt": [f"What is {a}+{a}?" for a in range(n)],
            "answer": [str(2 * a) for a in range(n)],
        }
    )


def test_grpo_run_survives_a_restart_and_finishes_its_last_step(
    tiny_bert_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real GRPOTrainer run whose server is SIGTERM-stopped during step 1 and comes back
    (same port, same store) 10 s later: more than the old fixed 5 retries waited. The run's
    history is complete, the last step included, without any manual finish."""
    import threading

    trl = pytest.importorskip("trl", reason="trl is not installed (requirements-integrations.txt)")
    from transformers import AutoTokenizer

    from tests.support.server import start_server

    args = ["--model", str(tiny_bert_dir), "--device", "cpu"]
    data_dir = tmp_path / "store"
    server = start_server(args, data_dir=data_dir)
    servers = [server]
    model_dir = _tiny_causal_lm(tmp_path / "tiny-gpt2")
    client = RewardClient(server.base_url, f"trl-{uuid.uuid4().hex[:8]}", retry_budget=120)
    client.configure(significance="classifier", reference="group")
    inner = make_trl_reward_func(client)
    calls: list[int] = []

    def restart_later() -> None:
        time.sleep(10)
        servers.append(start_server(args, data_dir=data_dir, port=server.port))

    def reward_func(**kwargs: Any) -> list[float]:
        step = kwargs["trainer_state"].global_step
        calls.append(step)
        if step == 1:
            assert server.stop() == 0  # drains, then exits
            threading.Thread(target=restart_later, daemon=True).start()
        return inner(**kwargs)

    reward_func.__name__ = inner.__name__
    try:
        trainer = trl.GRPOTrainer(
            model=str(model_dir),
            reward_funcs=[reward_func],
            args=_grpo_args(trl, tmp_path),
            train_dataset=_dataset(12),
            processing_class=AutoTokenizer.from_pretrained(str(model_dir)),
            callbacks=[inner.callback],  # type: ignore[attr-defined]
        )
        with caplog.at_level(logging.WARNING, logger="sigreward_client"):
            trainer.train()
        assert calls == [0, 1, 2]
        assert len(servers) == 2 and servers[1].alive()
        view = client.get_run()
        assert view.schedule is not None
        assert [(h.step, h.samples) for h in view.schedule.history] == [(0, 4), (1, 4), (2, 4)]
        away = [r for r in caplog.records if "retrying for up to 120 s" in r.getMessage()]
        assert len(away) == 1  # told once, not once per retry
    finally:
        for one in servers:
            one.stop()


def test_generation_stride_is_explained(
    classifier_server: ServerProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """steps_per_generation = 2 x gradient accumulation: TRL generates every 2 optimizer
    steps, the server sees steps 0, 2, and the callback says so at the start."""
    trl = pytest.importorskip("trl", reason="trl is not installed (requirements-integrations.txt)")
    from transformers import AutoTokenizer

    from sigreward_client.trl import install

    model_dir = _tiny_causal_lm(tmp_path / "tiny-gpt2")
    client = _client(classifier_server)
    func = make_trl_reward_func(client)
    trainer = trl.GRPOTrainer(
        model=str(model_dir),
        reward_funcs=[func],
        args=_grpo_args(trl, tmp_path, max_steps=4, steps_per_generation=2),
        train_dataset=_dataset(16),
        processing_class=AutoTokenizer.from_pretrained(str(model_dir)),
    )
    install(trainer)
    install(trainer)  # once only
    assert sum(cb is func.callback for cb in trainer.callback_handler.callbacks) == 1  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, logger="sigreward_client"):
        trainer.train()
    view = client.get_run()
    assert view.schedule is not None
    assert [(h.step, h.samples) for h in view.schedule.history] == [(0, 8), (2, 8)]
    assert any("generates every 2 optimizer steps" in r.getMessage() for r in caplog.records)
