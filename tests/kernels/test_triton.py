"""The Triton kernel gives the torch reference's answer bit for bit (interpreter on the CPU,
real kernel on CUDA): same word values, ties and threshold hits included, same counts."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.kernels.backends import torch_fused, torch_postprocess, triton_fused, triton_postprocess
from tests.kernels.ragged import Case, Ragged, assert_same, cases, ragged

SLOW_OK = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# (scores dtype, input kind): classifier logits arrive as fp32 or bf16 (the kernel computes in
# fp32); client values as float64, and also as fp32 (the kernel computes in float64).
INPUTS = [
    (torch.float32, "logit_diff"),
    (torch.bfloat16, "logit_diff"),
    (torch.float64, "logit_diff"),
    (torch.float64, "values"),
    (torch.float32, "values"),
]


@pytest.mark.kernels
@SLOW_OK
@given(case=cases(block=4), inputs=st.sampled_from(INPUTS), block=st.sampled_from([2, 4, 16]))
def test_kernel_equals_reference_bit_for_bit(
    case: Case, inputs: tuple[torch.dtype, str], block: int
) -> None:

    dtype, kind = inputs
    b = case.batch
    args = (case.scores.to(dtype), b.offsets, case.threshold, kind)
    want = torch_postprocess(*args)
    got = triton_postprocess(*args, block=block)
    assert want.word_values.dtype == (torch.float64 if kind == "values" else torch.float32)
    assert_same(got, want)


@pytest.mark.kernels
@SLOW_OK
@given(
    case=cases(block=4, kinds=("gaussian", "ternary")),
    dim=st.sampled_from([1, 7, 64, 65, 200]),
    dtype=st.sampled_from([torch.float32, torch.bfloat16]),
    bias=st.one_of(st.floats(-2.0, 2.0), st.just(0.0)),
    bias_as_tensor=st.booleans(),
)
def test_fused_kernel_equals_reference_bit_for_bit(
    case: Case, dim: int, dtype: torch.dtype, bias: float, bias_as_tensor: bool
) -> None:

    b = case.batch
    gen = torch.Generator().manual_seed(b.n_tokens * 31 + dim)
    if case.kind == "ternary":  # entries in {-1, 0, 1}: many tokens with equal logits
        hidden = torch.randint(-1, 2, (b.n_tokens, dim), generator=gen).to(dtype)
        w_diff = torch.randint(-1, 2, (dim,), generator=gen).float()
    else:
        hidden = torch.randn(b.n_tokens, dim, generator=gen).to(dtype)
        w_diff = torch.randn(dim, generator=gen) / math.sqrt(dim)
    b_diff = torch.tensor(bias) if bias_as_tensor else bias
    args = (hidden, w_diff, b_diff, b.offsets, case.threshold)
    want = torch_fused(*args)
    got = triton_fused(*args, block=4)
    assert_same(got, want)


def _shaped_batch(n_samples: int, segments: int, words: int, max_tokens: int, seed: int) -> Ragged:
    """Samples of up to ``segments`` segments of up to ``words`` words of 1..max_tokens tokens
    (some segments and samples empty)."""
    gen = torch.Generator().manual_seed(seed)

    def draw(hi: int) -> int:
        return int(torch.randint(0, hi + 1, (1,), generator=gen))

    return ragged(
        [
            [torch.randint(1, max_tokens + 1, (draw(words),), generator=gen).tolist()
             for _ in range(draw(segments))]
            for _ in range(n_samples)
        ]
    )  # fmt: skip


@pytest.mark.kernels
@pytest.mark.parametrize(
    ("n_samples", "segments", "words", "max_tokens"),
    [(1, 1, 1, 1), (3, 2, 7, 5), (5, 3, 33, 1), (2, 1, 129, 3), (7, 4, 17, 40), (1, 2, 300, 2)],
)
@pytest.mark.parametrize("inputs", INPUTS, ids=lambda x: f"{x[0]}-{x[1]}")
@pytest.mark.parametrize("block", [8, 128])
def test_odd_and_ragged_shapes(
    n_samples: int,
    segments: int,
    words: int,
    max_tokens: int,
    inputs: tuple[torch.dtype, str],
    block: int,
) -> None:

    dtype, kind = inputs
    b = _shaped_batch(n_samples, segments, words, max_tokens, seed=words * 7 + max_tokens)
    gen = torch.Generator().manual_seed(b.n_tokens)
    scores = (torch.randn(b.n_tokens, generator=gen, dtype=torch.float64) * 4).to(dtype)
    args = (scores, b.offsets, 0.37, kind)
    assert_same(
        triton_postprocess(*args, block=block),
        torch_postprocess(*args),
    )


@pytest.mark.kernels
@pytest.mark.parametrize("kind", ["logit_diff", "values"])
def test_means_one_ulp_apart_and_order_dependent_sums(kind: str) -> None:
    """Hand-built ties: word means one ulp apart, and words whose sums depend on the order
    (float32: 1 + 2**-24 + 2**-24 is 1 left to right, 2**-24 + 2**-24 + 1 is 1 + 2**-23)."""

    dtype = torch.float32 if kind == "logit_diff" else torch.float64
    x = torch.tensor(0.25, dtype=dtype)
    up = torch.nextafter(x, torch.tensor(1.0, dtype=dtype))
    eps = torch.finfo(dtype).eps / 2
    tokens = [x, up, x, 1.0, eps, eps, eps, eps, 1.0, 0.0, 1.0, 1.0]
    scores = torch.stack([torch.as_tensor(t, dtype=dtype) for t in tokens])
    b = ragged([[[1, 1, 1], [3, 3, 1]], [[1, 1]]])
    for threshold in (0.0, 0.5, 1.0):
        args = (scores, b.offsets, threshold, kind)
        want = torch_postprocess(*args)
        assert_same(triton_postprocess(*args, block=2), want)
    if kind == "values":  # the same tokens in another order give a larger word mean
        v = want.word_values.tolist()
        assert v[:3] == [0.0, 1.0, 0.0]  # one ulp is the whole span of segment 0
        assert v[3] < 1.0 and v[4:6] == [1.0, 0.0]


@pytest.mark.kernels
def test_non_contiguous_hidden_and_long_words() -> None:
    """A strided hidden view and a word longer than a tile of words."""

    torch.manual_seed(1)
    b = ragged([[[1, 23, 2], [4]], [[3, 1, 1, 1, 1, 1, 2, 1, 1]]])
    wide = torch.randn(b.n_tokens, 140)
    hidden = wide[:, ::2]  # stride (140, 2)
    w_diff = torch.randn(70)
    args = (hidden, w_diff, -0.5, b.offsets, 0.3)
    assert_same(
        triton_fused(*args, block=4),
        torch_fused(*args),
    )


def _realistic_batch() -> tuple:
    gen = torch.Generator().manual_seed(7)
    samples = []
    for _ in range(64):
        n_seg = int(torch.randint(1, 4, (1,), generator=gen))
        samples.append(
            [torch.randint(1, 5, (int(torch.randint(0, 400, (1,), generator=gen)),),
                           generator=gen).tolist() for _ in range(n_seg)]
        )  # fmt: skip
    return ragged(samples)


@pytest.mark.kernels
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_kernel_equals_cpu_reference_bit_for_bit() -> None:
    """The compiled kernel on the GPU against the torch reference on the CPU."""
    from sigreward.kernels import (
        kernel_backend,
        significance_postprocess,
        significance_postprocess_fused,
    )

    assert kernel_backend("cuda") == "triton"
    b = _realistic_batch()
    offsets = b.offsets
    cuda = offsets.to("cuda")
    scores = torch.randn(b.n_tokens) * 3
    got = significance_postprocess(scores.cuda(), cuda, 0.5, "logit_diff")
    assert_same(got, torch_postprocess(scores, offsets, 0.5, "logit_diff"))

    values = torch.randn(b.n_tokens, dtype=torch.float64) * 1e300
    got = significance_postprocess(values.cuda(), cuda, 0.3, "values")
    assert_same(got, torch_postprocess(values, offsets, 0.3, "values"))

    hidden = torch.randn(b.n_tokens, 768, dtype=torch.bfloat16)
    w_diff = torch.randn(768) / math.sqrt(768)
    got = significance_postprocess_fused(hidden.cuda(), w_diff.cuda(), 0.1, cuda, 0.5)
    assert_same(got, torch_fused(hidden, w_diff, 0.1, offsets, 0.5))
