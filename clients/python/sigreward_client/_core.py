"""Transport-independent parts of the clients: ids, batch splitting, retries, parsing."""

from __future__ import annotations

import email.utils
import json
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sigreward_client.errors import APIError, BatchTooLarge
from sigreward_client.models import (
    RunView,
    Sample,
    SampleLike,
    SampleResult,
    Schedule,
    ScoreResult,
    ServerLimits,
    as_sample,
)

# Statuses worth another try: a full queue (429), not ready / draining (503) and gateways.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Room left under max_body_bytes for headers a proxy might count and rounding.
BODY_SLACK_BYTES = 256


def dumps(payload: Any) -> bytes:
    """Compact UTF-8 JSON; NaN/inf are refused here rather than sent as invalid JSON."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def prepare_samples(step: int, samples: Sequence[SampleLike]) -> list[Sample]:
    """Validated copies of ``samples``, each with an id.

    Ids are assigned before the first try so a retried request is recognised by the server's
    dedupe and never counted twice. Random ids (not ``f"{step}-{index}"``) because one step may
    be scored by several calls (per-sample reward functions do exactly that).
    """
    if isinstance(samples, str | bytes) or not isinstance(samples, Sequence):
        raise TypeError("samples must be a list of dicts or Sample objects")
    prepared = [as_sample(sample, index) for index, sample in enumerate(samples)]
    for sample in prepared:
        if sample.id is None:
            sample.id = f"{step}-{uuid.uuid4().hex}"
    return prepared


@dataclass(frozen=True)
class Chunk:
    """One request's share of a batch: the original indices and the encoded body."""

    indices: list[int]
    body: bytes


def split_batch(
    run_id: str, step: int, samples: Sequence[Sample], limits: ServerLimits
) -> list[Chunk]:
    """Split ``samples`` into request bodies under the server's limits.

    A prompt's samples (same ``prompt_id``) always share a request: group references and the
    group baselines (kimi, arora_zanette, shorter_better, grpo_lead, alp, laser_d) use the
    groups within one request. Samples without a ``prompt_id`` are independent. Groups are
    packed greedily in order of first appearance.
    """
    if not samples:
        raise ValueError("samples must not be empty")
    head = dumps({"run_id": run_id, "step": step, "samples": []})
    encoded = [dumps(sample.to_json()) for sample in samples]
    groups: dict[object, list[int]] = {}
    for index, sample in enumerate(samples):
        key: object = ("prompt", sample.prompt_id) if sample.prompt_id is not None else index
        groups.setdefault(key, []).append(index)

    budget = limits.max_body_bytes - BODY_SLACK_BYTES - len(head)
    chunks: list[list[int]] = []
    current: list[int] = []
    current_bytes = 0
    for members in groups.values():
        group_bytes = sum(len(encoded[i]) + 1 for i in members)
        if len(members) > limits.max_samples or group_bytes > budget:
            what = (
                f"prompt_id {samples[members[0]].prompt_id!r} ({len(members)} samples, "
                f"{group_bytes} bytes)"
                if samples[members[0]].prompt_id is not None
                else f"sample {members[0]} ({group_bytes} bytes)"
            )
            raise BatchTooLarge(
                f"{what} does not fit one request under the server's limits "
                f"(max_samples={limits.max_samples}, max_body_bytes={limits.max_body_bytes})"
            )
        if current and (
            len(current) + len(members) > limits.max_samples or current_bytes + group_bytes > budget
        ):
            chunks.append(current)
            current, current_bytes = [], 0
        current.extend(members)
        current_bytes += group_bytes
    if current:
        chunks.append(current)

    prefix = head[: -len(b"]}")]  # b'{"run_id":...,"samples":['
    return [
        Chunk(indices, prefix + b",".join(encoded[i] for i in indices) + b"]}")
        for indices in chunks
    ]


def merge_results(
    run_id: str, step: int, total: int, parts: Sequence[tuple[Chunk, Mapping[str, Any]]]
) -> ScoreResult:
    """Reassemble per-request answers into one result in the original sample order."""
    results: list[SampleResult | None] = [None] * total
    schedule: Schedule | None = None
    late = False
    for chunk, body in parts:
        answered = body.get("samples")
        if not isinstance(answered, list) or len(answered) != len(chunk.indices):
            raise APIError(
                200,
                "invalid_response",
                "the server answered a different number of samples",
                None,
                body,
            )
        for index, item in zip(chunk.indices, answered, strict=True):
            results[index] = SampleResult.model_validate(item)
        this = Schedule.model_validate(body.get("schedule") or {})
        late = late or this.late
        if schedule is None:
            # The first request of a step finishes earlier steps; the k it reports holds for
            # the whole step, so every part reports the same k.
            schedule = this
    assert schedule is not None
    schedule = schedule.model_copy(update={"late": late})
    samples = [r for r in results if r is not None]
    return ScoreResult(
        run_id=run_id,
        step=step,
        rewards=[s.reward for s in samples],
        length_rewards=[s.length_reward for s in samples],
        samples=samples,
        schedule=schedule,
        requests=len(parts),
    )


def run_view(run_id: str, body: Any) -> RunView:
    """A RunView from a run body, or from a bare schedule body."""
    if isinstance(body, Mapping) and "run_id" in body:
        return RunView.model_validate(body)
    if isinstance(body, Mapping) and "k" in body:
        return RunView.model_validate({"run_id": run_id, "schedule": body})
    if isinstance(body, Mapping) and "schedule" in body:
        return RunView.model_validate({"run_id": run_id, **body})
    raise APIError(200, "invalid_response", "the server's answer is not a run", None, body)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; a server's Retry-After is a lower bound."""

    max_retries: int = 5
    backoff_base: float = 0.25
    backoff_max: float = 20.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self.backoff_max, self.backoff_base * (2**attempt))
        jittered = random.uniform(0.0, ceiling)
        if retry_after is not None:
            return min(retry_after, self.max_retry_after) + random.uniform(0.0, self.backoff_base)
        return jittered


def parse_body(content: bytes) -> Any:
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return content.decode(errors="replace")
