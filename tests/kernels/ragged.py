"""Ragged batches for the kernel tests: builders, a hypothesis strategy and a naive oracle."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from hypothesis import strategies as st
from torch import Tensor

from kernels.reference import SignificanceOutput


@dataclass(frozen=True)
class Ragged:
    """Offsets of a batch: samples -> segments -> words -> tokens."""

    cu_words: Tensor
    cu_segments: Tensor
    cu_samples: Tensor

    @property
    def n_tokens(self) -> int:
        return int(self.cu_words[-1])

    @property
    def n_samples(self) -> int:
        return self.cu_samples.numel() - 1

    def word_sample(self) -> Tensor:
        """(W,) index of the sample that owns each word."""
        seg_len = (self.cu_samples[1:] - self.cu_samples[:-1]).long()
        word_len = (self.cu_segments[1:] - self.cu_segments[:-1]).long()
        seg_sample = torch.repeat_interleave(torch.arange(self.n_samples), seg_len)
        return torch.repeat_interleave(seg_sample, word_len)


def offsets(lengths: list[int]) -> Tensor:
    out = [0]
    for n in lengths:
        out.append(out[-1] + n)
    return torch.tensor(out, dtype=torch.int32)


def ragged(samples: list[list[list[int]]]) -> Ragged:
    """``samples[n][g]`` is the list of token counts of the words of segment g of sample n."""
    segments = [seg for sample in samples for seg in sample]
    words = [n_tok for seg in segments for n_tok in seg]
    return Ragged(
        cu_words=offsets(words),
        cu_segments=offsets([len(seg) for seg in segments]),
        cu_samples=offsets([len(sample) for sample in samples]),
    )


@dataclass(frozen=True)
class Case:
    batch: Ragged
    scores: Tensor  # (T,) float32
    threshold: float
    correct: Tensor
    ref_significant: Tensor
    ref_insignificant: Tensor
    k: float
    quantised: bool  # small-integer scores: every fp32 step is exact, so results are too


@st.composite
def cases(draw: st.DrawFn, block: int, quantised: bool | None = None) -> Case:
    """Random ragged batches whose segment sizes hit the tile edges of ``block``."""
    edge_sizes = [0, 1, block - 1, block, block + 1, 2 * block + 3]
    seg_words = st.one_of(st.sampled_from(edge_sizes), st.integers(0, 6))
    shape = draw(st.lists(st.lists(seg_words, max_size=3), max_size=4))
    seed = draw(st.integers(0, 2**31 - 1))
    allow_empty_words = draw(st.booleans())
    if quantised is None:
        quantised = draw(st.booleans())
    gen = torch.Generator().manual_seed(seed)

    def word_tokens(n_words: int) -> list[int]:
        lo = 0 if allow_empty_words else 1
        return torch.randint(lo, 6, (n_words,), generator=gen).tolist()

    batch = ragged([[word_tokens(n) for n in sample] for sample in shape])
    n_tok, n = batch.n_tokens, batch.n_samples
    if quantised:  # small integers: exact sums, ties and exact threshold hits
        scores = torch.randint(-2, 3, (n_tok,), generator=gen).float()
    else:
        scores = torch.randn(n_tok, generator=gen) * 3
    ref_choices = torch.tensor([0.0, 0.5, 1.0, 2.0, 3.5, 7.0, 40.0])
    return Case(
        batch=batch,
        scores=scores,
        threshold=draw(st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.floats(0.0, 1.0))),
        correct=torch.rand(n, generator=gen) < 0.5,
        ref_significant=ref_choices[torch.randint(0, 7, (n,), generator=gen)],
        ref_insignificant=ref_choices[torch.randint(0, 7, (n,), generator=gen)],
        k=draw(st.sampled_from([0.0, 3.18, -2.0, 10.0])),
        quantised=quantised,
    )


def naive_counts(
    values: list[float], batch: Ragged, threshold: float
) -> tuple[list[float], list[int], list[int]]:
    """Plain-Python method.md section 1 on already-activated token values."""
    cw, cs, cn = (t.tolist() for t in (batch.cu_words, batch.cu_segments, batch.cu_samples))
    word_values = [0.0] * (len(cw) - 1)
    significant, insignificant = [], []
    for n in range(len(cn) - 1):
        s = i = 0
        for g in range(cn[n], cn[n + 1]):
            means = {}
            for w in range(cs[g], cs[g + 1]):
                toks = values[cw[w] : cw[w + 1]]
                if toks:
                    means[w] = sum(toks) / len(toks)
            if not means:
                continue
            lo, hi = min(means.values()), max(means.values())
            for w, v in means.items():
                word_values[w] = 1.0 if hi == lo else (v - lo) / (hi - lo)
                if word_values[w] < threshold:
                    i += 1
                else:
                    s += 1
        significant.append(s)
        insignificant.append(i)
    return word_values, significant, insignificant


def assert_outputs_match(
    got: SignificanceOutput,
    want: SignificanceOutput,
    batch: Ragged,
    threshold: float,
    atol: float = 1e-5,
    exact: bool = False,
) -> None:
    """Equal up to float rounding; a count may differ only by words that sit on the threshold.

    ``exact`` demands bitwise-equal word values and counts (inputs whose arithmetic is exact).
    """
    atol = 0.0 if exact else atol
    torch.testing.assert_close(got.word_values.cpu(), want.word_values, atol=atol, rtol=0)
    assert got.significant.dtype == torch.int32 and got.insignificant.dtype == torch.int32
    near = (want.word_values - threshold).abs() <= atol
    on_edge = (near & ~torch.tensor(exact)).int()
    slack = torch.zeros(batch.n_samples, dtype=torch.int32).index_add_(
        0, batch.word_sample(), on_edge
    )
    sig, insig = got.significant.cpu(), got.insignificant.cpu()
    assert torch.equal(sig + insig, want.significant + want.insignificant)
    assert bool(((sig - want.significant).abs() <= slack).all()), (sig, want.significant)
    if want.length_reward is None:
        assert got.length_reward is None
        return
    assert got.length_reward is not None and got.length_reward.dtype == torch.float32
    same = torch.eq(sig, want.significant)
    torch.testing.assert_close(
        got.length_reward.cpu()[same], want.length_reward[same], atol=1e-4, rtol=1e-5
    )


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))
