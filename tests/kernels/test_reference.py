"""The torch reference against independent oracles: plain-Python loops and float64 math."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sigreward.kernels import reference
from tests.kernels.backends import torch_fused, torch_postprocess
from tests.kernels.ragged import Case, cases, naive_counts, ragged, sigmoid


@settings(max_examples=60, deadline=None)
@given(case=cases(block=16, kinds=("gaussian", "ternary", "wide")),
       kind=st.sampled_from(["logit_diff", "values"]))  # fmt: skip
def test_reference_matches_plain_python(case: Case, kind: str) -> None:
    # logits below EXP_FLOOR (-86) all get the same tiny keep probability: not an oracle case
    assume(kind == "values" or case.kind != "wide")
    b = case.batch
    scores = case.scores if kind == "values" else case.scores.float()
    out = torch_postprocess(scores, b.offsets, case.threshold, kind)
    values = scores.tolist()
    if kind == "logit_diff":
        values = [sigmoid(x) for x in values]
    word_values, significant, insignificant = naive_counts(values, b, case.threshold)
    torch.testing.assert_close(out.word_values.double(), torch.tensor(word_values, dtype=torch.float64),
                               atol=1e-5 if kind == "logit_diff" else 1e-12, rtol=0)  # fmt: skip
    # words within rounding of the threshold may fall either way between fp32 and fp64
    edge = [abs(v - case.threshold) < 1e-5 for v in word_values]
    if not any(edge):
        assert out.significant.tolist() == significant
        assert out.insignificant.tolist() == insignificant


@settings(max_examples=40, deadline=None)
@given(case=cases(block=8, kinds=("gaussian", "order", "wide")))
def test_word_means_sum_left_to_right_then_divide(case: Case) -> None:
    """The published code sums a word's float32 probabilities left to right, then divides."""
    b = case.batch
    values = case.scores.float()
    got = reference.word_means(values, b.cu_words)
    cw = b.cu_words.tolist()
    flat = values.numpy()
    want = []
    for start, end in zip(cw[:-1], cw[1:], strict=True):
        total = np.float32(0.0)
        for x in flat[start:end]:
            total = np.float32(total + x)
        want.append(np.float32(total / np.float32(max(end - start, 1))))
    assert torch.equal(got, torch.from_numpy(np.array(want, dtype=np.float32)).reshape(-1))


def test_keep_probability_is_a_sigmoid_within_float32_rounding() -> None:
    x = torch.cat([torch.linspace(-90.0, 90.0, 400_001), torch.tensor([0.0, -0.0, 1e-30])])
    got = reference.keep_probability(x).double()
    want = torch.sigmoid(x.double())
    assert got.dtype == torch.float64 and bool((got >= 0).all()) and bool((got <= 1).all())
    normal = x > reference.EXP_FLOOR
    rel = (got - want).abs() / want
    assert float(rel[normal].max()) < 4 * 2.0**-24  # a few float32 ulps
    # below the floor every p is the floor's, exp(-86) ~ 4.5e-38: off by less than that
    assert float((got - want)[~normal].abs().max()) < 5e-38
    assert reference.keep_probability(torch.tensor([0.0, 100.0])).tolist() == [0.5, 1.0]


def test_keep_probability_is_monotone() -> None:
    x = torch.linspace(-20.0, 20.0, 1_000_001)
    p = reference.keep_probability(x)
    assert bool((p[1:] >= p[:-1]).all())


@pytest.mark.parametrize("dim", [1, 63, 64, 65, 1024])
def test_head_logit_diff_is_the_dot_product(dim: int) -> None:
    gen = torch.Generator().manual_seed(dim)
    hidden = torch.randn(33, dim, generator=gen).bfloat16()
    w_diff = torch.randn(dim, generator=gen)
    got = reference.head_logit_diff(hidden, w_diff, torch.tensor(0.25))
    want = hidden.double() @ w_diff.double() + 0.25
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, atol=1e-4 * math.sqrt(dim), rtol=1e-5)


def test_fused_reference_is_the_head_then_the_op() -> None:
    torch.manual_seed(0)
    hidden = torch.randn(7, 12, dtype=torch.bfloat16)
    w_diff = torch.randn(12)
    b = ragged([[[2, 1], [4]]])
    fused = torch_fused(hidden, w_diff, torch.tensor(0.25), b.offsets, 0.5)
    logits = reference.head_logit_diff(hidden, w_diff, torch.tensor(0.25))
    plain = torch_postprocess(logits, b.offsets, 0.5)
    assert torch.equal(fused.word_values, plain.word_values)
    assert torch.equal(fused.significant, plain.significant)
