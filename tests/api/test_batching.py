"""The batcher with the real engine (values mode, no model): merging, per-request results,
failure isolation, queue bounds and metrics."""

from __future__ import annotations

import asyncio

import pytest

from sigreward.batching import Batcher, JobTooLarge, QueueFull, Timing
from sigreward.engine import SignificanceEngine
from sigreward.metrics import Metrics

REQUESTS = [[[0.0, 1.0, 2.0]], [[5.0, 4.0], [1.0, 1.0, 9.0, 0.0]], [[0.3, 0.1, 0.2, 0.9]]]


@pytest.fixture(scope="module")
def engine() -> SignificanceEngine:
    return SignificanceEngine(None)


def _histogram_count(metrics: Metrics, name: str) -> float:
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == f"{name}_count":
                return sample.value
    raise AssertionError(name)


def _histogram_sum(metrics: Metrics, name: str) -> float:
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == f"{name}_sum":
                return sample.value
    raise AssertionError(name)


def test_concurrent_requests_merge_into_one_engine_call(engine: SignificanceEngine) -> None:
    metrics = Metrics()

    async def scenario() -> list[list]:
        batcher = Batcher(engine, max_batch_tokens=10_000, max_queue_tokens=10_000, metrics=metrics)
        batcher.start()
        timings = [Timing() for _ in REQUESTS]
        try:
            results = await asyncio.gather(
                *[batcher.count_values(v, 0.5, t) for v, t in zip(REQUESTS, timings, strict=True)]
            )
        finally:
            await batcher.stop()
        assert all(t.inference_ms > 0 for t in timings)
        assert batcher.queued_tokens == 0
        return results

    results = asyncio.run(scenario())
    for values, got in zip(REQUESTS, results, strict=True):
        assert got == engine.count_values(values, 0.5)
    assert _histogram_count(metrics, "sigreward_batch_requests") == 1
    assert _histogram_sum(metrics, "sigreward_batch_requests") == len(REQUESTS)
    assert _histogram_sum(metrics, "sigreward_batch_size") == sum(len(v) for v in REQUESTS)


def test_batches_respect_the_token_budget(engine: SignificanceEngine) -> None:
    metrics = Metrics()

    async def scenario() -> None:
        # Each request is 4 + 1 estimated tokens: two fit in a batch of 10, three do not.
        batcher = Batcher(engine, max_batch_tokens=10, max_queue_tokens=1000, metrics=metrics)
        batcher.start()
        try:
            await asyncio.gather(*[batcher.count_values([[1, 2, 3, 4]], 0.5) for _ in range(5)])
        finally:
            await batcher.stop()

    asyncio.run(scenario())
    assert _histogram_count(metrics, "sigreward_batch_requests") == 3  # 2 + 2 + 1


def test_a_bad_request_does_not_fail_the_requests_merged_with_it(
    engine: SignificanceEngine,
) -> None:
    async def scenario() -> list:
        batcher = Batcher(engine, max_batch_tokens=10_000, max_queue_tokens=10_000)
        batcher.start()
        try:
            return await asyncio.gather(
                batcher.count_values([[0.0, 1.0]], 0.5),
                batcher.count_values(
                    [[-1e308, 1e308]], 0.5
                ),  # span overflows a double: engine refuses
                batcher.count_values([[2.0, 0.0, 1.0]], 0.5),
                return_exceptions=True,
            )
        finally:
            await batcher.stop()

    good, bad, other = asyncio.run(scenario())
    assert isinstance(bad, ValueError)
    assert good == engine.count_values([[0.0, 1.0]], 0.5)
    assert other == engine.count_values([[2.0, 0.0, 1.0]], 0.5)


def test_queue_bounds(engine: SignificanceEngine) -> None:
    metrics = Metrics()

    async def scenario() -> list:
        batcher = Batcher(engine, max_batch_tokens=1000, max_queue_tokens=12, metrics=metrics)
        batcher.start()
        try:
            with pytest.raises(JobTooLarge):
                await batcher.count_values([[0.0] * 20], 0.5)
            # 7 + 7 > 12: the second request, queued with the first, is refused.
            return await asyncio.gather(
                batcher.count_values([[0.0] * 6], 0.5),
                batcher.count_values([[1.0] * 6], 0.5),
                return_exceptions=True,
            )
        finally:
            await batcher.stop()

    first, second = asyncio.run(scenario())
    assert isinstance(second, QueueFull) and second.retry_after_s >= 1
    assert first == engine.count_values([[0.0] * 6], 0.5)
    assert metrics.registry.get_sample_value("sigreward_queue_rejections_total") == 1
