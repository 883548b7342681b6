"""Ragged batches for the kernel tests: builders, a hypothesis strategy and a naive oracle."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from hypothesis import strategies as st
from torch import Tensor

from sigreward.kernels.contract import RaggedOffsets, SignificanceOutput


@dataclass(frozen=True)
class Ragged:
    """Offsets of a batch: samples -> segments -> words -> tokens."""

    cu_words: Tensor
    cu_segments: Tensor
    cu_samples: Tensor

    @property
    def offsets(self) -> RaggedOffsets:
        return RaggedOffsets(self.cu_words, self.cu_segments, self.cu_samples)

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


SCORE_KINDS = ("gaussian", "ternary", "ulp", "order", "wide")


@dataclass(frozen=True)
class Case:
    batch: Ragged
    scores: Tensor  # (T,) float64: cast to the op's dtype by the caller
    threshold: float
    kind: str  # one of SCORE_KINDS


def _scores(kind: str, n_tok: int, gen: torch.Generator) -> Tensor:
    """Token scores of one kind; all but "gaussian" are built to make ties and rounding bite."""
    if kind == "ternary":  # logits {-1, 0, 1}: equal word means, exact threshold hits
        return torch.randint(-1, 2, (n_tok,), generator=gen).double()
    if kind == "ulp":  # a handful of neighbouring float32 numbers: means 1 ulp apart
        base = torch.tensor(0.3, dtype=torch.float32)
        steps = torch.randint(0, 4, (n_tok,), generator=gen)
        out = base.repeat(n_tok)
        for _ in range(3):
            out = torch.where(steps > 0, torch.nextafter(out, torch.tensor(1.0)), out)
            steps = steps - 1
        return out.double()
    if kind == "order":  # large and tiny terms: a word's sum depends on the order of its adds
        big = torch.randint(0, 2, (n_tok,), generator=gen).bool()
        tiny = torch.rand(n_tok, generator=gen, dtype=torch.float64) * 1e-7
        return torch.where(big, 1.0 + tiny, tiny * 3.0)
    if kind == "wide":  # magnitudes from 1e-30 to 1e30 and both signs
        mag = torch.pow(10.0, torch.randint(-30, 31, (n_tok,), generator=gen).double())
        return mag * torch.randn(n_tok, generator=gen, dtype=torch.float64)
    return torch.randn(n_tok, generator=gen, dtype=torch.float64) * 3


@st.composite
def cases(draw: st.DrawFn, block: int, kinds: tuple[str, ...] = SCORE_KINDS) -> Case:
    """Random ragged batches whose segment sizes hit the tile edges of ``block``: empty
    samples and segments, one-token and long words, odd sizes."""
    edge_sizes = [0, 1, block - 1, block, block + 1, 2 * block + 3]
    seg_words = st.one_of(st.sampled_from(edge_sizes), st.integers(0, 6))
    shape = draw(st.lists(st.lists(seg_words, max_size=3), max_size=4))
    seed = draw(st.integers(0, 2**31 - 1))
    allow_empty_words = draw(st.booleans())
    long_words = draw(st.booleans())
    kind = draw(st.sampled_from(kinds))
    gen = torch.Generator().manual_seed(seed)

    def word_tokens(n_words: int) -> list[int]:
        lo = 0 if allow_empty_words else 1
        hi = 40 if long_words else 6
        return torch.randint(lo, hi, (n_words,), generator=gen).tolist()

    batch = ragged([[word_tokens(n) for n in sample] for sample in shape])
    threshold = draw(st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.floats(0.0, 1.0)))
    return Case(batch, _scores(kind, batch.n_tokens, gen), threshold, kind)


def naive_counts(
    values: list[float], batch: Ragged, threshold: float
) -> tuple[list[float], list[int], list[int]]:
    """Plain-Python word means, min-max per segment and strict counts on activated values."""
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


def assert_same(got: SignificanceOutput, want: SignificanceOutput) -> None:
    """Bit-identical word values (dtype included) and equal counts."""
    assert got.word_values.dtype == want.word_values.dtype
    assert got.significant.dtype == torch.int32 and got.insignificant.dtype == torch.int32
    got_v, want_v = got.word_values.cpu(), want.word_values.cpu()
    same_bits = torch.equal(got_v, want_v) and torch.equal(got_v.signbit(), want_v.signbit())
    if not same_bits:
        diff = torch.nonzero(got_v != want_v).flatten()[:5].tolist()
        raise AssertionError(
            f"word values differ at {diff}: {got_v[diff].tolist()} != {want_v[diff].tolist()}"
        )
    assert torch.equal(got.significant.cpu(), want.significant.cpu())
    assert torch.equal(got.insignificant.cpu(), want.insignificant.cpu())


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)
