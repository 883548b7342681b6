"""The batcher keeps a pipelined engine fed: the next call starts while one is running."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from sigreward.batching import Batcher
from sigreward.engine import SignificanceEngine
from tests.support.models import cached_model


class _MeetingEngine(SignificanceEngine):
    """The real engine; its first two count_texts calls each wait (at most 30 s) until the
    other has started, so they succeed together only when the batcher runs two at once."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.meeting = threading.Barrier(2, timeout=30)
        self.met = 0
        self._calls = 0
        self._lock = threading.Lock()

    def count_texts(self, texts: list[str], threshold: float):  # type: ignore[no-untyped-def]
        with self._lock:
            self._calls += 1
            first_two = self._calls <= 2
        if first_two:
            try:
                self.meeting.wait()
                with self._lock:
                    self.met += 1
            except threading.BrokenBarrierError:
                pass
        return super().count_texts(texts, threshold)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_model("tiny_bert", tmp_path_factory.getbasetemp() / "batching-models")


@pytest.mark.parametrize("pipelined", [True, False])
def test_pipelined_engine_gets_two_calls_at_once(tiny_bert: Path, pipelined: bool) -> None:
    engine = _MeetingEngine(str(tiny_bert), device="cpu", pipelined=pipelined)
    if not pipelined:
        engine.meeting = threading.Barrier(2, timeout=0.5)  # would wait forever otherwise
    texts = [["First answer is 42."], ["Wait, let me check again."], ["So the sum is 17."]]

    async def scenario() -> list:
        batcher = Batcher(engine, max_batch_tokens=10_000, max_queue_tokens=10_000)
        assert batcher.depth == (2 if pipelined else 1)
        batcher.start()
        try:
            # Different thresholds never merge: three engine calls.
            return await asyncio.gather(
                *[batcher.count_texts(t, 0.3 + 0.1 * i) for i, t in enumerate(texts)]
            )
        finally:
            await batcher.stop()

    try:
        results = asyncio.run(scenario())
        assert engine.met == (2 if pipelined else 0)
        for i, (t, got) in enumerate(zip(texts, results, strict=True)):
            assert got == SignificanceEngine.count_texts(engine, t, 0.3 + 0.1 * i)
    finally:
        engine.close()
