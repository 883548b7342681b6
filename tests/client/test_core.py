"""Transport-free parts of the SDK: ids, splitting under limits, merging, Retry-After."""

from __future__ import annotations

import email.utils
import json
import time

import pytest

import tests.client.fixtures  # noqa: F401  (puts clients/python on sys.path)
from sigreward_client._core import (
    BODY_SLACK_BYTES,
    RetryPolicy,
    merge_results,
    parse_retry_after,
    prepare_samples,
    split_batch,
)
from sigreward_client.errors import APIError, BatchTooLarge
from sigreward_client.models import Sample, ServerLimits


def _samples(prompts: list[str | None], text: str = "x") -> list[Sample]:
    raw = [
        {"prompt_id": p, "response": f"{text}{i}", "correct": True}
        if p
        else {"response": f"{text}{i}", "correct": True}
        for i, p in enumerate(prompts)
    ]
    return prepare_samples(3, raw)


def test_prepare_assigns_ids_and_copies() -> None:
    raw = [{"response": "a", "correct": True}, Sample(id="given", response="b", correct=False)]
    prepared = prepare_samples(7, raw)
    assert prepared[0].id is not None and prepared[0].id.startswith("7-")
    assert prepared[1].id == "given"
    assert "id" not in raw[0]  # the caller's dict is untouched
    assert len({s.id for s in prepare_samples(7, raw[:1] * 5)}) == 5
    with pytest.raises(TypeError, match=r"samples\[0\] must be a dict or a Sample"):
        prepare_samples(0, [42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="must be a list"):
        prepare_samples(0, "text")  # type: ignore[arg-type]


def test_split_keeps_groups_and_respects_limits() -> None:
    prompts = ["a", "b", "a", None, "c", "b", "c", "c", None]
    samples = _samples(prompts)
    chunks = split_batch("run", 3, samples, ServerLimits(max_samples=4, max_body_bytes=10**6))
    assert sorted(i for c in chunks for i in c.indices) == list(range(len(samples)))
    for chunk in chunks:
        assert len(chunk.indices) <= 4
        body = json.loads(chunk.body)
        assert body["run_id"] == "run" and body["step"] == 3
        assert [s["response"] for s in body["samples"]] == [f"x{i}" for i in chunk.indices]
    for prompt in ("a", "b", "c"):
        holding = [c for c in chunks if any(prompts[i] == prompt for i in c.indices)]
        assert len(holding) == 1, prompt


def test_split_by_bytes() -> None:
    samples = _samples([None] * 6, text="y" * 300)
    one = len(json.dumps(samples[0].to_json(), separators=(",", ":")))
    limit = 2 * one + 200 + BODY_SLACK_BYTES
    chunks = split_batch("r", 0, samples, ServerLimits(max_samples=100, max_body_bytes=limit))
    assert [len(c.indices) for c in chunks] == [2, 2, 2]
    assert all(len(c.body) <= limit for c in chunks)


def test_split_refuses_a_group_over_the_limit() -> None:
    with pytest.raises(BatchTooLarge, match="prompt_id 'a' \\(3 samples"):
        split_batch("r", 0, _samples(["a", "a", "a"]), ServerLimits(max_samples=2))
    with pytest.raises(BatchTooLarge, match="sample 0"):
        split_batch("r", 0, _samples([None], text="z" * 5000), ServerLimits(max_body_bytes=1000))
    with pytest.raises(ValueError, match="must not be empty"):
        split_batch("r", 0, [], ServerLimits())


def test_merge_restores_order_and_checks_counts() -> None:
    samples = _samples(["a", "b", "a", "b"])
    chunks = split_batch("r", 1, samples, ServerLimits(max_samples=2))
    assert [c.indices for c in chunks] == [[0, 2], [1, 3]]

    def answer(indices: list[int], k: float) -> dict:
        return {
            "samples": [
                {"id": f"s{i}", "reward": float(i), "length_reward": i / 10} for i in indices
            ],
            "schedule": {"k": k, "dynamic": False, "low_slope_count": 0, "late": False},
        }

    merged = merge_results(
        "r", 1, 4, [(chunks[0], answer([0, 2], 2.0)), (chunks[1], answer([1, 3], 2.0))]
    )
    assert merged.rewards == [0.0, 1.0, 2.0, 3.0]
    assert merged.length_rewards == [0.0, 0.1, 0.2, 0.3]
    assert [s.id for s in merged.samples] == ["s0", "s1", "s2", "s3"]
    assert merged.requests == 2 and merged.schedule.k == 2.0
    bad = {"samples": [], "schedule": {"k": 1.0}}
    with pytest.raises(APIError, match="different number of samples"):
        merge_results("r", 1, 4, [(chunks[0], bad)])


def test_retry_after_and_backoff() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (parse_retry_after(future) or 0) <= 31
    policy = RetryPolicy(max_retries=5, backoff_base=0.5, backoff_max=4.0, max_retry_after=10.0)
    for attempt in range(8):
        assert 0.0 <= policy.delay(attempt, None) <= min(4.0, 0.5 * 2**attempt)
    assert 7.0 <= policy.delay(0, 7.0) <= 7.5
    assert policy.delay(0, 1000.0) <= 10.5


def test_limits_from_info() -> None:
    info = {"limits": {"max_samples": 3, "max_body_bytes": 999, "max_chars_per_response": 5}}
    assert ServerLimits.from_info(info) == ServerLimits(
        max_samples=3, max_body_bytes=999, max_chars_per_response=5
    )
    assert ServerLimits.from_info({}) == ServerLimits()
