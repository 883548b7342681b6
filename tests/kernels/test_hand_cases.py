"""Cases worked out by hand (word means, min-max per segment, strict threshold), run on both
implementations."""

from __future__ import annotations

import math

import pytest
import torch

from sigreward.kernels import RaggedOffsets
from tests.kernels.backends import BACKENDS, Postprocess
from tests.kernels.ragged import ragged

pytestmark = pytest.mark.parametrize("postprocess", BACKENDS)


def values_of(*tokens: float) -> torch.Tensor:
    return torch.tensor(tokens, dtype=torch.float32)


def doubles(*tokens: float) -> torch.Tensor:
    return torch.tensor(tokens, dtype=torch.float64)


def test_flat_segment_is_all_significant(postprocess: Postprocess) -> None:
    b = ragged([[[1, 1, 1]]])
    out = postprocess(values_of(0.3, 0.3, 0.3), b.offsets, 0.5,
                      "values")  # fmt: skip
    assert out.word_values.tolist() == [1.0, 1.0, 1.0]
    assert out.significant.tolist() == [3] and out.insignificant.tolist() == [0]


def test_threshold_hit_exactly_counts_as_significant(postprocess: Postprocess) -> None:
    b = ragged([[[1, 1, 1]]])
    out = postprocess(values_of(0.0, 1.0, 2.0), b.offsets, 0.5,
                      "values")  # fmt: skip
    assert out.word_values.tolist() == [0.0, 0.5, 1.0]
    assert out.significant.tolist() == [2] and out.insignificant.tolist() == [1]


def test_multi_token_word_means_values(postprocess: Postprocess) -> None:
    # words [2, 4] -> 3, [1] -> 1, [4, 5, 6] -> 5; min 1, max 5 -> 0.5, 0, 1
    b = ragged([[[2, 1, 3]]])
    out = postprocess(values_of(2, 4, 1, 4, 5, 6), b.offsets,
                      0.6, "values")  # fmt: skip
    assert out.word_values.tolist() == [0.5, 0.0, 1.0]
    assert out.significant.tolist() == [1] and out.insignificant.tolist() == [2]


def test_multi_token_word_means_of_keep_probabilities(postprocess: Postprocess) -> None:
    # sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4
    # words [0, ln3] -> 5/8, [ln3] -> 3/4, [-ln3] -> 1/4; normalised 3/4, 1, 0
    ln3 = math.log(3.0)
    b = ragged([[[2, 1, 1]]])
    out = postprocess(values_of(0.0, ln3, ln3, -ln3), b.offsets,
                      0.5)  # fmt: skip
    torch.testing.assert_close(out.word_values, torch.tensor([0.75, 1.0, 0.0]))
    assert out.significant.tolist() == [2] and out.insignificant.tolist() == [1]


def test_segments_of_one_sample_are_normalised_separately(postprocess: Postprocess) -> None:
    # segment A [0, 10] -> 0, 1; segment B [100, 101, 102] -> 0, 0.5, 1. Threshold 0.6:
    # A gives 1 + 1, B 1 significant + 2 insignificant. Normalised together it would be 3 + 2.
    b = ragged([[[1, 1], [1, 1, 1]]])
    out = postprocess(values_of(0, 10, 100, 101, 102), b.offsets, 0.6, "values")
    assert out.word_values.tolist() == [0.0, 1.0, 0.0, 0.5, 1.0]
    assert out.significant.tolist() == [2] and out.insignificant.tolist() == [3]


def test_counts_sum_over_segments_and_stay_per_sample(postprocess: Postprocess) -> None:
    b = ragged([[[1, 1]], [[1], [1, 1, 1]]])
    out = postprocess(values_of(5, 1, 7, 3, 2, 1), b.offsets,
                      0.5, "values")  # fmt: skip
    # sample 0: [1, 0]; sample 1: [1] then [1, 0.5, 0]
    assert out.word_values.tolist() == [1.0, 0.0, 1.0, 1.0, 0.5, 0.0]
    assert out.significant.tolist() == [1, 3] and out.insignificant.tolist() == [1, 1]


def test_empty_sample_and_empty_segment_get_zero(postprocess: Postprocess) -> None:
    # sample 0 has no segments, sample 1 one segment without words, sample 2 one word
    b = ragged([[], [[]], [[1]]])
    out = postprocess(values_of(0.2), b.offsets, 0.5, "values")
    assert out.word_values.tolist() == [1.0]
    assert out.significant.tolist() == [0, 0, 1] and out.insignificant.tolist() == [0, 0, 0]


def test_word_without_tokens_is_not_a_unit(postprocess: Postprocess) -> None:
    b = ragged([[[1, 0, 1]]])
    out = postprocess(values_of(4.0, 2.0), b.offsets, 0.5,
                      "values")  # fmt: skip
    assert out.word_values.tolist() == [1.0, 0.0, 0.0]
    assert out.significant.tolist() == [1] and out.insignificant.tolist() == [1]


def test_bf16_scores_are_accumulated_in_the_compute_dtype(postprocess: Postprocess) -> None:
    # 256 + 1 is not a bf16 number, so a bf16 accumulator would lose the 1s
    b = ragged([[[4, 1], [1, 1]]])
    scores = torch.tensor([256.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0], dtype=torch.bfloat16)
    out = postprocess(scores, b.offsets, 0.5, "values")
    assert out.word_values.dtype == torch.float64
    assert out.word_values.tolist() == [1.0, 0.0, 0.0, 1.0]
    # logits: keep probabilities in float32, sigmoid(0) = 0.5 exactly
    out = postprocess(scores, b.offsets, 0.5)
    assert out.word_values.dtype == torch.float32
    assert out.word_values.tolist() == [1.0, 0.0, 0.0, 1.0]


def test_values_are_normalised_in_float64(postprocess: Postprocess) -> None:
    # float32 would round 0.49999999999 to 0.5, which is significant at threshold 0.5
    b = ragged([[[1, 1, 1]], [[1, 1, 1]], [[1, 1]]])
    scores = doubles(0.0, 0.49999999999, 1.0, -3e38, 0.0, 3e38, 1e300, 1e300 + 1e285)
    out = postprocess(scores, b.offsets, 0.5, "values")
    assert out.word_values.dtype == torch.float64
    assert out.word_values.tolist() == [0.0, 0.49999999999, 1.0, 0.0, 0.5, 1.0, 0.0, 1.0]
    assert out.significant.tolist() == [1, 2, 1] and out.insignificant.tolist() == [2, 1, 1]


def test_threshold_is_compared_in_the_compute_dtype(postprocess: Postprocess) -> None:
    # float32(0.7) = 0.69999998807907...: below 0.7 in float64 values mode, so insignificant
    # (a float32 comparison would call it equal, hence significant)
    t32 = float(torch.tensor(0.7, dtype=torch.float32))
    b = ragged([[[1, 1, 1]]])
    out = postprocess(doubles(0.0, t32, 1.0), b.offsets, 0.7,
                      "values")  # fmt: skip
    assert out.word_values.tolist() == [0.0, t32, 1.0]
    assert out.significant.tolist() == [1] and out.insignificant.tolist() == [2]


def test_empty_batch(postprocess: Postprocess) -> None:
    zero = torch.zeros(1, dtype=torch.int32)
    out = postprocess(torch.zeros(0), RaggedOffsets(zero, zero, zero), 0.5, "values")
    assert out.word_values.shape == (0,) and out.significant.shape == (0,)
    assert out.insignificant.shape == (0,)
