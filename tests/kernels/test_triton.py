"""The Triton kernel equals the torch reference (interpreter on the CPU, real kernel on CUDA)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels import reference
from service.reward import SignificanceRewardParams, significance_length_reward
from service.types import Counts
from tests.kernels.ragged import Case, assert_outputs_match, cases, ragged

BLOCK = 16
SLOW_OK = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reward_kwargs(case: Case) -> dict:
    return {
        "correct": case.correct,
        "ref_significant": case.ref_significant,
        "ref_insignificant": case.ref_insignificant,
        "k": case.k,
    }


@pytest.mark.kernels
@SLOW_OK
@given(
    case=cases(block=BLOCK),
    kind=st.sampled_from(["logit_diff", "values"]),
    dtype=st.sampled_from([torch.float32, torch.bfloat16]),
    with_reward=st.booleans(),
)
def test_kernel_matches_reference(
    case: Case, kind: str, dtype: torch.dtype, with_reward: bool
) -> None:
    from kernels.significance import significance_postprocess_triton

    b = case.batch
    args = (case.scores.to(dtype), b.cu_words, b.cu_segments, b.cu_samples, case.threshold, kind)
    extra = reward_kwargs(case) if with_reward else {}
    want = reference.significance_postprocess(*args, **extra)
    got = significance_postprocess_triton(*args, **extra, block=BLOCK)
    exact = case.quantised and kind == "values"  # integer sums and IEEE divisions on both sides
    assert_outputs_match(got, want, b, case.threshold, exact=exact)


@pytest.mark.kernels
@SLOW_OK
@given(
    case=cases(block=8, quantised=False),
    dim=st.sampled_from([1, 7, 16, 33]),
    dtype=st.sampled_from([torch.float32, torch.bfloat16]),
    bias=st.one_of(st.floats(-2.0, 2.0), st.just(0.0)),
    bias_as_tensor=st.booleans(),
)
def test_fused_kernel_matches_reference(
    case: Case, dim: int, dtype: torch.dtype, bias: float, bias_as_tensor: bool
) -> None:
    from kernels.significance import significance_postprocess_fused_triton

    b = case.batch
    gen = torch.Generator().manual_seed(b.n_tokens * 31 + dim)
    hidden = torch.randn(b.n_tokens, dim, generator=gen).to(dtype)
    w_diff = (torch.randn(dim, generator=gen) / math.sqrt(dim)).to(dtype)
    b_diff = torch.tensor(bias) if bias_as_tensor else bias
    args = (hidden, w_diff, b_diff, b.cu_words, b.cu_segments, b.cu_samples, case.threshold)
    want = reference.significance_postprocess_fused(*args, **reward_kwargs(case))
    got = significance_postprocess_fused_triton(*args, **reward_kwargs(case), block=8, block_d=16)
    assert_outputs_match(got, want, b, case.threshold, atol=1e-4)


@pytest.mark.kernels
@settings(max_examples=20, deadline=None)
@given(case=cases(block=BLOCK))
def test_kernel_reward_agrees_with_the_formula(case: Case) -> None:
    from kernels.significance import significance_postprocess_triton

    b = case.batch
    params = SignificanceRewardParams(lambda_c=4.0, lambda_w_n=1.5, lambda_w_e=6.0)
    out = significance_postprocess_triton(
        case.scores, b.cu_words, b.cu_segments, b.cu_samples, case.threshold, "logit_diff",
        case.correct, case.ref_significant, case.ref_insignificant,
        params.lambda_c, params.lambda_w_n, params.lambda_w_e, case.k, block=BLOCK,
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
        assert math.isclose(float(out.length_reward[n]), want, rel_tol=1e-5, abs_tol=1e-5)


@pytest.mark.kernels
def test_non_contiguous_hidden_and_long_words() -> None:
    """A strided hidden view and a word longer than a tile of words."""
    from kernels.significance import significance_postprocess_fused_triton

    torch.manual_seed(1)
    b = ragged([[[1, 23, 2], [4]], [[3, 1, 1, 1, 1, 1, 2, 1, 1]]])
    wide = torch.randn(b.n_tokens, 40)
    hidden = wide[:, ::2]  # stride (40, 2)
    w_diff = torch.randn(20)
    args = (hidden, w_diff, -0.5, b.cu_words, b.cu_segments, b.cu_samples, 0.3)
    want = reference.significance_postprocess_fused(*args)
    got = significance_postprocess_fused_triton(*args, block=4, block_d=8)
    assert_outputs_match(got, want, b, 0.3, atol=1e-4)


def _realistic_batch(device: str) -> tuple:
    gen = torch.Generator().manual_seed(7)
    samples = []
    for _ in range(64):
        n_seg = int(torch.randint(1, 4, (1,), generator=gen))
        samples.append(
            [torch.randint(1, 5, (int(torch.randint(0, 400, (1,), generator=gen)),),
                           generator=gen).tolist() for _ in range(n_seg)]
        )  # fmt: skip
    b = ragged(samples)
    n = b.n_samples
    reward = {
        "correct": (torch.rand(n, generator=gen) < 0.5).to(device),
        "ref_significant": (torch.rand(n, generator=gen) * 300).to(device),
        "ref_insignificant": (torch.rand(n, generator=gen) * 300).to(device),
        "k": 1.5,
    }
    return b, reward


@pytest.mark.kernels
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_dispatch_runs_triton_and_matches_reference() -> None:
    from kernels import kernel_backend, significance_postprocess, significance_postprocess_fused

    assert kernel_backend("cuda") == "triton"
    b, reward = _realistic_batch("cuda")
    cuda = [t.cuda() for t in (b.cu_words, b.cu_segments, b.cu_samples)]
    cpu_reward = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in reward.items()}
    scores = torch.randn(b.n_tokens) * 3
    got = significance_postprocess(scores.cuda(), *cuda, 0.5, "logit_diff", **reward)
    want = reference.significance_postprocess(scores, b.cu_words, b.cu_segments, b.cu_samples,
                                              0.5, "logit_diff", **cpu_reward)  # fmt: skip
    assert_outputs_match(got, want, b, 0.5, atol=1e-4)

    hidden = torch.randn(b.n_tokens, 768, dtype=torch.bfloat16)
    w_diff = torch.randn(768) / math.sqrt(768)
    got = significance_postprocess_fused(hidden.cuda(), w_diff.cuda(), 0.1, *cuda, 0.5, **reward)
    want = reference.significance_postprocess_fused(hidden, w_diff, 0.1, b.cu_words,
                                                    b.cu_segments, b.cu_samples, 0.5,
                                                    **cpu_reward)  # fmt: skip
    assert_outputs_match(got, want, b, 0.5, atol=1e-3)
