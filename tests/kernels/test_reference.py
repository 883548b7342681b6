"""The torch reference against independent oracles: a plain-Python loop and the reward formula."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import reference
from kernels.reference import RewardInputs, length_reward_torch
from service.reward import SignificanceRewardParams, significance_length_reward
from service.types import Counts
from tests.kernels.ragged import Case, cases, naive_counts, sigmoid


@settings(max_examples=60, deadline=None)
@given(case=cases(block=16), kind=st.sampled_from(["logit_diff", "values"]))
def test_reference_matches_plain_python(case: Case, kind: str) -> None:
    b = case.batch
    out = reference.significance_postprocess(
        case.scores, b.cu_words, b.cu_segments, b.cu_samples, case.threshold, kind
    )
    values = case.scores.tolist()
    if kind == "logit_diff":
        values = [sigmoid(x) for x in values]
    word_values, significant, insignificant = naive_counts(values, b, case.threshold)
    torch.testing.assert_close(out.word_values, torch.tensor(word_values), atol=1e-5, rtol=0)
    # words within rounding of the threshold may fall either way between fp32 and fp64
    edge = [abs(v - case.threshold) < 1e-5 for v in word_values]
    if not any(edge):
        assert out.significant.tolist() == significant
        assert out.insignificant.tolist() == insignificant


@settings(max_examples=40, deadline=None)
@given(case=cases(block=16))
def test_kernel_reward_agrees_with_the_formula(case: Case) -> None:
    """The reward stage of the op equals service.reward on the op's own counts."""
    b = case.batch
    params = SignificanceRewardParams(lambda_c=5.0, lambda_w_n=2.0, lambda_w_e=5.0)
    out = reference.significance_postprocess(
        case.scores, b.cu_words, b.cu_segments, b.cu_samples, case.threshold, "logit_diff",
        case.correct, case.ref_significant, case.ref_insignificant,
        params.lambda_c, params.lambda_w_n, params.lambda_w_e, case.k,
    )  # fmt: skip
    assert out.length_reward is not None
    for n in range(b.n_samples):
        want, _ = significance_length_reward(
            bool(case.correct[n]),
            Counts(int(out.significant[n]), int(out.insignificant[n])),
            Counts(float(case.ref_significant[n]), float(case.ref_insignificant[n])),
            case.k,
            params,
        )
        assert math.isclose(float(out.length_reward[n]), want, rel_tol=1e-6, abs_tol=1e-6)


count = st.integers(0, 60)
ref_count = st.one_of(st.just(0.0), st.floats(0.0, 80.0))


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(st.booleans(), count, count, ref_count, ref_count), max_size=8),
    k=st.floats(-10.0, 60.0),
    lambdas=st.tuples(st.floats(0.0, 10.0), st.floats(0.0, 10.0), st.floats(0.0, 10.0)),
)
def test_reward_stage_on_arbitrary_counts(rows: list, k: float, lambdas: tuple) -> None:
    """Also the counts the op cannot produce (S == 0 < I), against the formula."""
    params = SignificanceRewardParams(*lambdas)
    cols = list(zip(*rows, strict=True)) if rows else [[], [], [], [], []]
    got = length_reward_torch(
        torch.tensor(cols[1], dtype=torch.int32),
        torch.tensor(cols[2], dtype=torch.int32),
        RewardInputs(
            torch.tensor(cols[0], dtype=torch.bool),
            torch.tensor(cols[3], dtype=torch.float32),
            torch.tensor(cols[4], dtype=torch.float32),
        ),
        *lambdas,
        k,
    )
    for n, (correct, s, i, ref_s, ref_i) in enumerate(rows):
        # the formula sees the same float32 references the tensor holds
        ref = Counts(float(torch.tensor(ref_s)), float(torch.tensor(ref_i)))
        want, _ = significance_length_reward(correct, Counts(s, i), ref, k, params)
        assert math.isclose(float(got[n]), want, rel_tol=1e-6, abs_tol=1e-5)


def test_fused_reference_is_the_head_then_the_op() -> None:
    torch.manual_seed(0)
    hidden = torch.randn(7, 12, dtype=torch.bfloat16)
    w_diff = torch.randn(12)
    cu_words = torch.tensor([0, 2, 3, 7], dtype=torch.int32)
    cu_segments = torch.tensor([0, 1, 3], dtype=torch.int32)
    cu_samples = torch.tensor([0, 2], dtype=torch.int32)
    fused = reference.significance_postprocess_fused(
        hidden, w_diff, torch.tensor(0.25), cu_words, cu_segments, cu_samples, 0.5
    )
    logits = hidden.float() @ w_diff + 0.25
    plain = reference.significance_postprocess(logits, cu_words, cu_segments, cu_samples, 0.5)
    torch.testing.assert_close(fused.word_values, plain.word_values)
    assert torch.equal(fused.significant, plain.significant)
