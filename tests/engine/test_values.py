"""Client-supplied values: one unit per value, min-max per response, strict threshold."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from sigreward.engine import SignificanceEngine


@pytest.fixture(scope="module")
def engine() -> SignificanceEngine:
    return SignificanceEngine(None, device="cpu")


def test_min_max_per_response_and_strict_threshold(engine: SignificanceEngine) -> None:
    d = engine.inspect_values([[2.0, 4.0, 3.0, 6.0], [10.0]], 0.5)
    assert d[0].values == [0.0, 0.5, 0.25, 1.0]
    assert d[0].units == ["0", "1", "2", "3"]
    # 0.5 is not below 0.5: significant
    assert (d[0].significant, d[0].insignificant) == (2, 2)
    assert d[1].values == [1.0] and (d[1].significant, d[1].insignificant) == (1, 0)


def test_equal_values_all_get_one(engine: SignificanceEngine) -> None:
    c = engine.count_values([[3.0, 3.0, 3.0]], 1.0)[0]
    assert (c.significant, c.insignificant) == (3.0, 0.0)


def test_empty_response_counts_zero(engine: SignificanceEngine) -> None:
    c = engine.count_values([[], [1.0, 0.0]], 0.5)
    assert (c[0].significant, c[0].insignificant) == (0.0, 0.0)
    assert (c[1].significant, c[1].insignificant) == (1.0, 1.0)
    assert engine.count_values([], 0.5) == []


def test_large_offsets_keep_their_resolution(engine: SignificanceEngine) -> None:
    d = engine.inspect_values([[1e9 + 0.25, 1e9 + 0.5, 1e9 + 0.75]], 0.5)[0]
    assert d.values == [0.0, 0.5, 1.0]


def test_values_count_in_float64(engine: SignificanceEngine) -> None:
    # float32 would round 0.49999999999 up to 0.5 (significant at 0.5) and overflow on 3e38
    c = engine.count_values([[0.0, 0.49999999999, 1.0], [-3e38, 0.0, 3e38]], 0.5)
    assert [(x.significant, x.insignificant) for x in c] == [(1.0, 2.0), (2.0, 1.0)]
    d = engine.inspect_values([[0.0, 0.49999999999, 1.0], [-3e38, 0.0, 3e38]], 0.5)
    assert d[0].values == [0.0, 0.49999999999, 1.0]
    assert d[1].values == [0.0, 0.5, 1.0]


def test_any_finite_doubles_are_normalised_exactly(engine: SignificanceEngine) -> None:
    tiny = 5e-324  # the smallest subnormal double
    values = [[-0.8e308, 0.0, 0.9e308], [tiny, 0.0, 2 * tiny], [1e16, 1e16 + 2, 1e16 + 4]]
    d = engine.inspect_values(values, 0.5)
    for v, got in zip(values, d, strict=True):
        lo, hi = min(v), max(v)
        assert got.values == [(x - lo) / (hi - lo) for x in v]  # Python's own doubles
    assert d[1].values == [0.5, 0.0, 1.0] and d[2].values == [0.0, 0.5, 1.0]


def test_a_span_that_overflows_a_double_is_refused(engine: SignificanceEngine) -> None:
    with pytest.raises(ValueError, match=r"values\[1\]: the span max - min .* overflows a double"):
        engine.count_values([[1.0, 2.0], [-1.7e308, 1.7e308]], 0.5)
    with pytest.raises(ValueError, match=r"values\[2\]"):  # empty responses are skipped
        engine.inspect_values([[1e308], [], [1e308, -1e308]], 0.5)


@pytest.mark.kernels
def test_the_triton_backend_gives_the_same_float64_answers(
    engine: SignificanceEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values mode through the Triton kernel (interpreted here, as on CUDA in production)."""
    monkeypatch.setenv("SIGREWARD_KERNEL_BACKEND", "triton")
    triton_engine = SignificanceEngine(None, device="cpu")
    assert (triton_engine.kernel_backend, engine.kernel_backend) == ("triton", "torch")
    rng = np.random.default_rng(5)
    values = [
        [0.0, 0.49999999999, 1.0],
        [-3e38, 0.0, 3e38],
        [5e-324, 0.0, 1e-323],
        [],
        [1e16, 1e16 + 2, 1e16 + 4, 1e16 + 2],
        (rng.normal(size=300) * 10.0 ** rng.integers(-200, 200, size=300)).tolist(),
    ]
    counts = {}
    for threshold in (0.3, 0.5, 0.49999999999):
        got = triton_engine.inspect_values(values, threshold)
        assert got == engine.inspect_values(values, threshold)
        counts[threshold] = [(d.significant, d.insignificant) for d in got[:3]]
    assert counts[0.5] == [(1, 2), (2, 1), (2, 1)]
    assert counts[0.49999999999][0] == (2, 1)  # equal to the threshold: significant


def test_non_finite_values_are_named(engine: SignificanceEngine) -> None:
    with pytest.raises(ValueError, match=r"values\[1\]\[2\]"):
        engine.count_values([[1.0], [0.0, 1.0, math.nan]], 0.5)
    with pytest.raises(ValueError, match=r"values\[0\]\[0\]"):
        engine.count_values([[math.inf]], 0.5)
    with pytest.raises(ValueError, match="threshold"):
        engine.count_values([[1.0]], math.nan)


def test_matches_numpy(engine: SignificanceEngine) -> None:
    rng = np.random.default_rng(3)
    values = [rng.normal(size=int(n)).tolist() for n in rng.integers(0, 50, size=40)]
    got = engine.inspect_values(values, 0.3)
    for v, d in zip(values, got, strict=True):
        if not v:
            assert d.values == []
            continue
        a = np.asarray(v)
        want = (a - a.min()) / (a.max() - a.min()) if a.max() > a.min() else np.ones_like(a)
        np.testing.assert_allclose(d.values, want, atol=1e-6)
        assert d.insignificant == int((np.asarray(d.values) < 0.3).sum())


def test_worker_threads_get_the_same_answers(minilm_engine: SignificanceEngine) -> None:
    texts = ["The answer is 42.", "Let me check: 17 plus 25. " * 40, ""]
    want = minilm_engine.count_texts(texts, 0.5)
    results: list = []
    errors: list = []

    def work() -> None:
        try:
            results.append(minilm_engine.count_texts(texts, 0.5))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [want] * 3


def test_count_tokens_runs_beside_a_scoring_call(minilm_engine: SignificanceEngine) -> None:
    # The batcher may size requests (count_tokens) while a worker thread scores texts.
    long_texts = ["Let me check: 17 plus 25 equals 42. " * 200] * 4
    want = minilm_engine.count_tokens(["The answer is 42."] * 3)
    errors: list = []

    def score() -> None:
        try:
            minilm_engine.count_texts(long_texts, 0.5)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=score)
    worker.start()
    seen = [minilm_engine.count_tokens(["The answer is 42."] * 3) for _ in range(50)]
    worker.join()
    assert not errors
    assert all(s == want for s in seen)
