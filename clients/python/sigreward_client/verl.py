"""verl integration: reward functions loaded through verl's ``custom_reward_function``.

Nothing from verl is imported here; verl calls these functions with plain Python values.

- ``compute_score`` (per sample; verl's ``naive`` reward manager, old and new reward loop),
- ``compute_score_async`` (the same, for verl >= 0.6 reward loop, which awaits coroutine reward
  functions; concurrent calls of one event loop are merged into one HTTP request),
- ``compute_score_batch`` (verl's ``batch`` reward manager: lists in, one request per batch).

Configuration comes from the environment: ``SIGREWARD_URL``, ``SIGREWARD_RUN_ID``,
``SIGREWARD_API_KEY`` (optional), ``SIGREWARD_TIMEOUT`` (seconds, default 120),
``SIGREWARD_RETRY_BUDGET`` (seconds of retrying an unreachable server, default 120),
``SIGREWARD_BATCH_WINDOW_MS`` (how long ``compute_score_async`` waits to merge concurrent
calls, default 20).

The step of a sample: ``extra_info["global_steps"]`` when present (put it there with
``install_global_steps_hook``), else none is sent and the server counts it from the run option
``samples_per_step`` with its durable per-run sample counter (right for any number of reward
workers and across restarts; the server refuses with a clear 422 when the run has no
``samples_per_step``). Validation samples (``extra_info["validate"]`` true) go to the run
``<run_id>-validation`` so they never move the training run's schedule.

The prompt group of a sample (``prompt_id``): ``extra_info["prompt_id"]``, else ``"uid"``, else
``"index"`` (verl's example datasets put the row index there), else none.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from sigreward_client._env import EnvConfig, async_client, sync_client
from sigreward_client.client import AsyncRewardClient
from sigreward_client.models import SampleResult, ScoreResult

PROMPT_ID_KEYS = ("prompt_id", "uid", "index")
VALIDATION_SUFFIX = "-validation"


def _config() -> EnvConfig:
    return EnvConfig.load()


def _extra(extra_info: Any) -> Mapping[str, Any]:
    return extra_info if isinstance(extra_info, Mapping) else {}


def _run_id(config: EnvConfig, extra: Mapping[str, Any]) -> str:
    return config.run_id + VALIDATION_SUFFIX if extra.get("validate") else config.run_id


def _step(extras: Sequence[Mapping[str, Any]]) -> int | None:
    """The step of a call's samples (one step per call); None: the server counts it."""
    steps = {int(e["global_steps"]) for e in extras if e.get("global_steps") is not None}
    if len(steps) > 1:
        raise ValueError(f"one call carries samples of several steps: {sorted(steps)}")
    return steps.pop() if steps else None


def _sample(
    solution_str: str, ground_truth: Any, extra: Mapping[str, Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    sample: dict[str, Any] = {"response": solution_str}
    if isinstance(extra.get("correct"), bool):
        sample["correct"] = extra["correct"]
    elif ground_truth is not None:
        label = (
            ground_truth[0]
            if isinstance(ground_truth, list | tuple) and ground_truth
            else ground_truth
        )
        sample["label"] = str(label)
    for key in PROMPT_ID_KEYS:
        if extra.get(key) is not None:
            sample["prompt_id"] = str(extra[key])
            break
    for key in ("num_tokens", "target_tokens"):
        value = extra.get(key, kwargs.get(key))
        if isinstance(value, int):
            sample[key] = value
    return sample


class _SingleCall(NamedTuple):
    """What a one-sample reward call sends, and where."""

    config: EnvConfig
    run_id: str
    step: int | None
    sample: dict[str, Any]


def _single_call(
    solution_str: str, ground_truth: Any, extra_info: Any, kwargs: Mapping[str, Any]
) -> _SingleCall:
    config = _config()
    extra = _extra(extra_info)
    return _SingleCall(
        config,
        _run_id(config, extra),
        _step([extra]),
        _sample(solution_str, ground_truth, extra, kwargs),
    )


def _score_dict(result: SampleResult, k: float) -> dict[str, Any]:
    """verl's per-sample dict: "score" is the reward; the other keys become logged extras.

    The keys and value types are the same for every sample (verl stacks them into arrays).
    """
    correct = bool(result.correct)
    return {
        "score": float(result.reward),
        "acc": float(correct),
        "sigreward_length_reward": float(result.length_reward),
        "sigreward_significant": float(result.significant or 0.0),
        "sigreward_insignificant": float(result.insignificant or 0.0),
        "sigreward_k": float(k),
    }


def _as_dicts(result: ScoreResult) -> list[dict[str, Any]]:
    return [_score_dict(sample, result.schedule.k) for sample in result.samples]


def compute_score(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """verl custom reward function (one sample per call). Returns ``{"score": reward, ...}``."""
    call = _single_call(solution_str, ground_truth, extra_info, kwargs)
    result = sync_client(call.config, call.run_id).score(call.step, [call.sample])
    return _as_dicts(result)[0]


def compute_score_batch(
    data_sources: Sequence[Any],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """verl ``batch`` reward manager function: one request for the whole batch (split only when
    over the server's limits, never inside a prompt's group). Validation and training samples in
    one batch are sent to their own runs."""
    config = _config()
    n = len(solution_strs)
    extras = [_extra(e) for e in (extra_infos if extra_infos is not None else [None] * n)]
    if not (len(ground_truths) == len(extras) == n):
        raise ValueError(
            f"{n} solution_strs, {len(ground_truths)} ground_truths, {len(extras)} extra_infos"
        )
    out: list[dict[str, Any] | None] = [None] * n
    by_run: dict[str, list[int]] = {}
    for i, extra in enumerate(extras):
        by_run.setdefault(_run_id(config, extra), []).append(i)
    for run_id, indices in by_run.items():
        step = _step([extras[i] for i in indices])
        samples = [_sample(solution_strs[i], ground_truths[i], extras[i], kwargs) for i in indices]
        for i, scored in zip(
            indices, _as_dicts(sync_client(config, run_id).score(step, samples)), strict=True
        ):
            out[i] = scored
    return [o for o in out if o is not None]


class _MicroBatcher:
    """Merges concurrent ``compute_score_async`` calls of one event loop into one request.

    verl's reward loop scores the samples of a chunk concurrently; waiting ``window`` seconds
    for the others turns N requests into one and keeps a prompt's samples together.
    """

    def __init__(self, client: AsyncRewardClient, window: float = 0.02) -> None:
        self.client = client
        self.window = window
        # Keyed by step; None collects the samples whose step the server counts.
        self._pending: dict[
            int | None, list[tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]]
        ] = {}
        self._flushers: dict[int | None, asyncio.Task[None]] = {}

    async def submit(self, step: int | None, sample: dict[str, Any]) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(step, []).append((sample, future))
        if step not in self._flushers:
            self._flushers[step] = asyncio.ensure_future(self._flush_later(step))
        return await future

    async def _flush_later(self, step: int | None) -> None:
        await asyncio.sleep(self.window)
        batch = self._pending.pop(step, [])
        self._flushers.pop(step, None)
        try:
            result = await self.client.score(step, [sample for sample, _ in batch])
        except Exception as err:  # every waiting caller gets the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        for (_, future), scored in zip(batch, _as_dicts(result), strict=True):
            if not future.done():
                future.set_result(scored)


# Per event loop (async clients are bound to their loop), then per run.
_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _MicroBatcher]] = (
    weakref.WeakKeyDictionary()
)


def _batch_window() -> float:
    try:
        return max(0.0, float(os.environ.get("SIGREWARD_BATCH_WINDOW_MS", "20")) / 1000.0)
    except ValueError as err:
        raise RuntimeError(f"bad SIGREWARD_BATCH_WINDOW_MS: {err}") from err


async def compute_score_async(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Coroutine version of ``compute_score`` for verl's reward loop (verl >= 0.6)."""
    call = _single_call(solution_str, ground_truth, extra_info, kwargs)
    per_run = _batchers.setdefault(asyncio.get_running_loop(), {})
    batcher = per_run.get(call.run_id)
    if batcher is None:
        client = async_client(call.config, call.run_id)
        batcher = per_run[call.run_id] = _MicroBatcher(client, _batch_window())
    return await batcher.submit(call.step, call.sample)


def install_global_steps_hook() -> None:
    """Make verl's agent-loop workers put the training step into every sample's ``extra_info``
    (``extra_info["global_steps"]``, and ``extra_info["validate"]`` for validation batches).

    verl passes the step to its agent-loop worker (``batch.meta_info["global_steps"]``) but not
    to reward functions. Call this once in each agent-loop worker process, for example from the
    module of a custom agent loop (docs/integrations.md shows the four lines). Idempotent.
    """
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

    original = AgentLoopWorker._run_agent_loop
    if getattr(original, "_sigreward_hook", False):
        return

    async def _run_agent_loop(
        self: Any, sampling_params: Any, trajectory: Any, **kwargs: Any
    ) -> Any:
        extra = kwargs.get("extra_info")
        if isinstance(extra, dict) and isinstance(trajectory, Mapping):
            # A copy: the dataset row's dict may be shared by the n rollouts of a prompt.
            extra = dict(extra)
            if trajectory.get("step") is not None:
                extra["global_steps"] = int(trajectory["step"])
            extra["validate"] = bool(trajectory.get("validate", False))
            kwargs["extra_info"] = extra
        return await original(self, sampling_params, trajectory, **kwargs)

    _run_agent_loop._sigreward_hook = True  # type: ignore[attr-defined]
    AgentLoopWorker._run_agent_loop = _run_agent_loop  # type: ignore[method-assign]
