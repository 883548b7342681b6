"""The pipelined engine gives exactly the serial engine's results, and really overlaps."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from sigreward.engine import SignificanceEngine
from sigreward.engine.pipeline import PipelinedExecutor, SerialExecutor, split_waves
from sigreward.engine.simulated import SimulatedEncoder, simulate_device


def ragged_texts(seed: int, n: int = 40) -> list[str]:
    """Empty, one-word, one-chunk and many-chunk texts, with line breaks and numbers."""
    rng = np.random.default_rng(seed)
    words = ("the", "answer", "is", "42.", "Wait,", "let", "me", "check", "again.", "So\n",
             "unbelievable", "17", "plus", "25", "equals", "carefully.")  # fmt: skip
    texts = ["", "Hi.", "\n", "word " * 1500]
    for _ in range(n - len(texts)):
        k = int(rng.choice([1, 5, 40, 200, 900]))
        texts.append(" ".join(str(rng.choice(words)) for _ in range(k)))
    rng.shuffle(texts)
    return texts


def engines(model_dir: Path, max_batch_tokens: int = 512) -> tuple[SignificanceEngine, ...]:
    # A small batch budget cuts the texts into many waves and forwards.
    return tuple(
        SignificanceEngine(
            str(model_dir), device="cpu", max_batch_tokens=max_batch_tokens, pipelined=p
        )
        for p in (False, True)
    )


def assert_same_details(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.units == y.units
        assert x.values == y.values  # bit for bit, not approximately
        assert (x.significant, x.insignificant) == (y.significant, y.insignificant)


@pytest.mark.parametrize("model", ["tiny_bert_dir", "tiny_xlmr_dir"])
def test_pipelined_matches_serial_bit_for_bit(model: str, request: pytest.FixtureRequest) -> None:
    serial, piped = engines(request.getfixturevalue(model))
    assert (serial.pipelined, piped.pipelined) == (False, True)
    texts = ragged_texts(seed=1)
    assert len(split_waves(texts, 512)) > 10
    try:
        assert_same_details(serial.inspect_texts(texts, 0.5), piped.inspect_texts(texts, 0.5))
        assert serial.count_texts(texts, 0.3) == piped.count_texts(texts, 0.3)
    finally:
        piped.close()


def test_concurrent_calls_each_get_their_own_results(tiny_xlmr_dir: Path) -> None:
    serial, piped = engines(tiny_xlmr_dir)
    calls = [ragged_texts(seed=s, n=12) for s in range(8)]
    want = [serial.inspect_texts(t, 0.5) for t in calls]
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            got = list(pool.map(lambda t: piped.inspect_texts(t, 0.5), calls))
    finally:
        piped.close()
    for a, b in zip(want, got, strict=True):
        assert_same_details(a, b)


def test_simulated_device_counts_are_reproducible(minilm_dir: Path) -> None:
    serial, piped = engines(minilm_dir, max_batch_tokens=2048)
    for engine in (serial, piped):
        engine.forward_tokens = engine.max_batch_tokens  # as on CUDA
    stand_ins = [simulate_device(e, seconds_per_position=0.0) for e in (serial, piped)]
    texts = ragged_texts(seed=2)
    try:
        assert_same_details(serial.inspect_texts(texts, 0.5), piped.inspect_texts(texts, 0.5))
    finally:
        piped.close()
    assert stand_ins[0].positions == stand_ins[1].positions > 0
    assert serial.counters.padded == piped.counters.padded == stand_ins[0].positions
    assert 0.0 <= piped.counters.padded_fraction < 1.0


def test_stand_in_depends_on_token_and_column_only() -> None:
    enc = SimulatedEncoder(vocab_size=50, hidden_size=8, seconds_per_position=0.0)
    a = enc(torch.tensor([[1, 2, 3]]), None)
    b = enc(torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]]), None)
    assert torch.equal(a[0], b[0, :3])
    assert not torch.equal(a[0, 0], a[0, 1])
    assert enc.positions == 11 and enc.forwards == 2


class _RecordingStages:
    """Real stages over words (count the letters); prepare raises for the text "boom". With
    `waves`, launch of wave w waits (at most 30 s) until the host has begun preparing wave
    w + 1, and counts the waves for which that happened."""

    def __init__(self, waves: int = 0) -> None:
        self.waves = waves
        self.started = 0
        self.overlapped = 0
        self._cond = threading.Condition()

    def prepare(self, texts: list[str], detail: bool) -> tuple[int, list[str]]:
        with self._cond:
            self.started += 1
            number = self.started
            self._cond.notify_all()
        if "boom" in texts:
            raise ValueError("texts must not contain 'boom'")
        return number, texts

    def launch(self, prepared: tuple[int, list[str]], threshold: float) -> list[int]:
        number, texts = prepared
        if number < self.waves:
            with self._cond:
                if self._cond.wait_for(lambda: self.started > number, timeout=30):
                    self.overlapped += 1
        return [len(t) for t in texts]

    def collect(self, pending: list[int]) -> list[int]:
        return pending


def test_host_prepares_the_next_wave_while_the_device_runs() -> None:
    texts = [f"text {i}" for i in range(6)]  # six waves of one text
    stages = _RecordingStages(waves=len(texts))
    piped = PipelinedExecutor(stages, wave_tokens=1)
    try:
        assert piped.run(texts, 0.5, False) == [len(t) for t in texts]
    finally:
        piped.close()
    # every wave but the last found the next one being prepared during its "device" time
    assert stages.overlapped == len(texts) - 1


def test_a_failing_call_does_not_fail_the_others() -> None:
    stages = _RecordingStages()
    piped = PipelinedExecutor(stages, wave_tokens=4)
    try:
        bad = piped.submit(["fine", "boom", "fine too"], 0.5, False)
        good = piped.submit(["a", "bb", "ccc"], 0.5, False)
        with pytest.raises(ValueError, match="boom"):
            bad.result(timeout=30)
        assert good.result(timeout=30) == [1, 2, 3]
    finally:
        piped.close()
    assert SerialExecutor(stages, 4).run(["a", "bb"], 0.5, False) == [1, 2]


def test_split_waves_cuts_by_estimated_tokens() -> None:
    texts = ["x" * 30, "x" * 30, "x" * 300, "", "x" * 3]
    assert split_waves(texts, 24) == [(0, 2), (2, 3), (3, 5)]
    assert split_waves([], 24) == []
    with pytest.raises(ValueError, match="wave_tokens"):
        split_waves(texts, 0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_pipelined_matches_serial_on_cuda(tiny_xlmr_dir: Path, dtype: str) -> None:
    """Pinned buffers, asynchronous copies and the three threads on a real card."""
    serial, piped = (
        SignificanceEngine(
            str(tiny_xlmr_dir), device="cuda", dtype=dtype, max_batch_tokens=1024, pipelined=p
        )  # fmt: skip
        for p in (False, True)
    )
    texts = ragged_texts(seed=3, n=60)
    try:
        assert_same_details(serial.inspect_texts(texts, 0.5), piped.inspect_texts(texts, 0.5))
        with ThreadPoolExecutor(max_workers=3) as pool:
            calls = [texts[i::3] for i in range(3)]
            got = list(pool.map(lambda t: piped.count_texts(t, 0.5), calls))
        assert got == [serial.count_texts(t, 0.5) for t in calls]
    finally:
        piped.close()


def test_close_finishes_submitted_calls_then_refuses_new_ones() -> None:
    piped = PipelinedExecutor(_RecordingStages(), wave_tokens=4)
    calls = [piped.submit([f"t{i}", "xy"], 0.5, False) for i in range(5)]
    piped.close()
    assert [c.result(timeout=0) for c in calls] == [[2, 2], [2, 2], [2, 2], [2, 2], [2, 2]]
    with pytest.raises(RuntimeError, match="closed"):
        piped.submit(["late"], 0.5, False)
    piped.close()  # twice is fine


@pytest.mark.parametrize("model", ["tiny_bert_dir", "tiny_xlmr_dir"])
def test_host_worker_processes_give_the_same_results(
    model: str, request: pytest.FixtureRequest
) -> None:
    path = str(request.getfixturevalue(model))
    serial = SignificanceEngine(path, device="cpu", max_batch_tokens=512, pipelined=False)
    piped = SignificanceEngine(path, device="cpu", max_batch_tokens=512, pipelined=True,
                               host_workers=2)  # fmt: skip
    assert piped._stages.host_workers == 2
    texts = ragged_texts(seed=7)
    try:
        assert_same_details(serial.inspect_texts(texts, 0.5), piped.inspect_texts(texts, 0.5))
        calls = [texts[i::3] for i in range(3)]
        with ThreadPoolExecutor(max_workers=3) as pool:
            got = list(pool.map(lambda t: piped.count_texts(t, 0.5), calls))
        assert got == [serial.count_texts(t, 0.5) for t in calls]
        assert len(piped._stages._pool._processes) == 2  # the waves went to the workers
        with pytest.raises(ValueError, match=r"texts\[1\]"):
            piped.count_texts(["fine", 3], 0.5)  # type: ignore[list-item]
    finally:
        piped.close()
