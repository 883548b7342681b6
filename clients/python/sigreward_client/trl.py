"""TRL integration: a reward function for ``GRPOTrainer(reward_funcs=[...])``.

Nothing from TRL is imported; GRPOTrainer calls the function with keyword arguments:
``prompts``, ``completions``, ``completion_ids``, ``trainer_state`` and every other dataset
column as a list (one entry per completion), plus ``log_extra`` / ``log_metric`` callbacks in
recent TRL versions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sigreward_client.client import RewardClient

log = logging.getLogger("sigreward_client")

DEFAULT_LABEL_COLUMNS = ("label", "answer", "solution", "ground_truth")

CorrectFn = Callable[..., bool]


def message_text(value: Any) -> str:
    """Plain text of a completion or prompt: a string, or a list of chat messages whose
    ``content`` is a string or a list of parts (``{"type": "text", "text": ...}``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        content = value.get("content", "")
        if isinstance(content, str):
            return content
        if isinstance(content, Sequence):
            return "".join(
                part.get("text", "") if isinstance(part, Mapping) else str(part) for part in content
            )
        return str(content)
    if isinstance(value, Sequence):
        return "\n".join(message_text(item) for item in value)
    return str(value)


def completion_text(completion: Any) -> str:
    """The policy's text: for conversational completions, the assistant messages only."""
    if isinstance(completion, Sequence) and not isinstance(completion, str):
        assistant = [
            m
            for m in completion
            if isinstance(m, Mapping) and m.get("role", "assistant") == "assistant"
        ]
        return message_text(assistant if assistant else completion)
    return message_text(completion)


def prompt_key(prompt: Any) -> str:
    """A stable id for a prompt: identical prompts (a GRPO group) get the same id."""
    canonical = (
        prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, default=str)
    )
    return "p-" + hashlib.sha256(canonical.encode("utf-8", "replace")).hexdigest()[:24]


class _LastStep:
    """The highest step the reward function scored (the one left to finish after training)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.step: int | None = None

    def saw(self, step: int) -> None:
        with self._lock:
            self.step = step if self.step is None else max(self.step, step)


def generation_stride(args: Any) -> float:
    """Optimizer steps between two generation rounds of GRPOTrainer (1 by default):
    ``steps_per_generation * num_iterations / gradient_accumulation_steps``."""
    per_generation = getattr(args, "steps_per_generation", None) or 1
    iterations = getattr(args, "num_iterations", None) or 1
    accumulation = getattr(args, "gradient_accumulation_steps", None) or 1
    return per_generation * iterations / accumulation


def make_finish_callback(client: RewardClient, last: _LastStep) -> Any:
    """A ``transformers.TrainerCallback`` that finishes the last scored step when training
    ends (the server finishes a step when the next one starts, so the last one would wait
    forever) and says at the start what GRPOTrainer's generation stride means for steps."""
    from transformers import TrainerCallback

    class SigrewardFinishCallback(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            stride = generation_stride(args)
            if stride > 1:
                log.warning(
                    "sigreward: GRPOTrainer generates every %g optimizer steps "
                    "(steps_per_generation=%s, num_iterations=%s, gradient_accumulation_steps=%s):"
                    " the server sees steps 0, %g, %g, ... and slope_period counts scored steps, "
                    "so it spans %g times as many optimizer steps (docs/integrations.md)",
                    stride,
                    getattr(args, "steps_per_generation", None),
                    getattr(args, "num_iterations", None),
                    getattr(args, "gradient_accumulation_steps", None),
                    stride,
                    2 * stride,
                    stride,
                )

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if last.step is not None:
                client.finish_step(last.step)

    return SigrewardFinishCallback()


def install(trainer: Any) -> None:
    """Add the finishing callback of every sigreward reward function of ``trainer`` (a
    GRPOTrainer) to it. Same as ``GRPOTrainer(..., callbacks=[reward_func.callback])``."""
    present = {id(cb) for cb in getattr(trainer.callback_handler, "callbacks", [])}
    for func in getattr(trainer, "reward_funcs", []):
        callback = getattr(func, "callback", None)
        if callback is not None and id(callback) not in present:
            trainer.add_callback(callback)


def make_trl_reward_func(
    client: RewardClient,
    label_column: str | None = None,
    correct_fn: CorrectFn | None = None,
    name: str = "sigreward",
    log_metrics: bool = True,
) -> Callable[..., list[float]]:
    """A GRPOTrainer reward function that asks the sigreward server for the rewards.

    - step: ``trainer_state.global_step``;
    - groups: completions of identical prompts share a ``prompt_id`` (GRPO's groups), and the
      whole call is one request (split only when over the server's limits, never in a group);
    - outcome: ``correct_fn(prompt=..., completion=..., **row)`` when given, else the dataset
      column ``label_column`` (default: the first of label/answer/solution/ground_truth present)
      sent as ``label`` for the server's verifier;
    - ``num_tokens`` from ``completion_ids`` (the baselines need it).

    Returns exactly one float per completion. ``__name__`` is ``name`` (TRL logs it).
    ``.callback`` is a TrainerCallback that finishes the last step when training ends: pass it
    in ``GRPOTrainer(callbacks=[...])`` or call ``install(trainer)``.
    """
    last = _LastStep()

    def reward_func(
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Sequence[int]] | None = None,
        trainer_state: Any = None,
        **columns: Any,
    ) -> list[float]:
        if trainer_state is None or getattr(trainer_state, "global_step", None) is None:
            raise ValueError(
                f"{name}: trainer_state (with global_step) is required; GRPOTrainer passes it"
            )
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        step = int(trainer_state.global_step)
        log_extra = columns.pop("log_extra", None)
        log_metric = columns.pop("log_metric", None)
        columns.pop("environments", None)
        label_key = label_column or next((c for c in DEFAULT_LABEL_COLUMNS if c in columns), None)
        if correct_fn is None and label_key is None:
            raise ValueError(
                f"{name}: no label column (tried {list(DEFAULT_LABEL_COLUMNS)}; dataset columns: "
                f"{sorted(columns)}); pass label_column= or correct_fn="
            )
        if label_key is not None and label_key not in columns and correct_fn is None:
            raise ValueError(
                f"{name}: dataset column {label_key!r} not found; columns: {sorted(columns)}"
            )

        samples: list[dict[str, Any]] = []
        for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
            text = completion_text(completion)
            sample: dict[str, Any] = {"prompt_id": prompt_key(prompt), "response": text}
            if completion_ids is not None:
                sample["num_tokens"] = len(completion_ids[i])
            if correct_fn is not None:
                row = {key: value[i] for key, value in columns.items() if isinstance(value, list)}
                sample["correct"] = bool(correct_fn(prompt=prompt, completion=text, **row))
            else:
                sample["label"] = str(columns[label_key][i])  # type: ignore[index]
            samples.append(sample)

        result = client.score(step, samples)
        last.saw(step)
        if log_metrics and callable(log_metric):
            log_metric(f"{name}/k", float(result.schedule.k))
            log_metric(
                f"{name}/length_reward_mean",
                sum(result.length_rewards) / max(1, len(result.length_rewards)),
            )
        if log_metrics and callable(log_extra):
            log_extra(f"{name}_length_reward", list(result.length_rewards))
        return [float(r) for r in result.rewards]

    reward_func.__name__ = name
    reward_func.__qualname__ = name
    try:
        reward_func.callback = make_finish_callback(client, last)  # type: ignore[attr-defined]
    except ImportError:  # no transformers: the user finishes the last step himself
        reward_func.callback = None  # type: ignore[attr-defined]
    return reward_func
