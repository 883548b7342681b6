"""Cases worked out by hand from method.md sections 1-2, run on both implementations."""

from __future__ import annotations

import math

import pytest
import torch

from tests.kernels.backends import BACKENDS, Postprocess
from tests.kernels.ragged import ragged

pytestmark = pytest.mark.parametrize("postprocess", BACKENDS)


def values_of(*tokens: float) -> torch.Tensor:
    return torch.tensor(tokens, dtype=torch.float32)


def reward_args(correct: list[bool], ref_s: list[float], ref_i: list[float]) -> dict:
    return {
        "correct": torch.tensor(correct, dtype=torch.bool),
        "ref_significant": torch.tensor(ref_s),
        "ref_insignificant": torch.tensor(ref_i),
    }


def test_flat_segment_is_all_significant(postprocess: Postprocess) -> None:
    b = ragged([[[1, 1, 1]]])
    out = postprocess(values_of(0.3, 0.3, 0.3), b.cu_words, b.cu_segments, b.cu_samples, 0.5,
                      "values")  # fmt: skip
    assert out.word_values.tolist() == [1.0, 1.0, 1.0]
    assert out.significant.tolist() == [3] and out.insignificant.tolist() == [0]
    assert out.length_reward is None


def test_threshold_hit_exactly_counts_as_significant(postprocess: Postprocess) -> None:
    b = ragged([[[1, 1, 1]]])
    out = postprocess(values_of(0.0, 1.0, 2.0), b.cu_words, b.cu_segments, b.cu_samples, 0.5,
                      "values")  # fmt: skip
    assert out.word_values.tolist() == [0.0, 0.5, 1.0]
    assert out.significant.tolist() == [2] and out.insignificant.tolist() == [1]


def test_multi_token_word_means_values(postprocess: Postprocess) -> None:
    # words [2, 4] -> 3, [1] -> 1, [4, 5, 6] -> 5; min 1, max 5 -> 0.5, 0, 1
    b = ragged([[[2, 1, 3]]])
    out = postprocess(values_of(2, 4, 1, 4, 5, 6), b.cu_words, b.cu_segments, b.cu_samples,
                      0.6, "values")  # fmt: skip
    assert out.word_values.tolist() == [0.5, 0.0, 1.0]
    assert out.significant.tolist() == [1] and out.insignificant.tolist() == [2]


def test_multi_token_word_means_of_keep_probabilities(postprocess: Postprocess) -> None:
    # sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4
    # words [0, ln3] -> 5/8, [ln3] -> 3/4, [-ln3] -> 1/4; normalised 3/4, 1, 0
    ln3 = math.log(3.0)
    b = ragged([[[2, 1, 1]]])
    out = postprocess(values_of(0.0, ln3, ln3, -ln3), b.cu_words, b.cu_segments, b.cu_samples,
                      0.5)  # fmt: skip
    torch.testing.assert_close(out.word_values, torch.tensor([0.75, 1.0, 0.0]))
    assert out.significant.tolist() == [2] and out.insignificant.tolist() == [1]


def test_segments_of_one_sample_are_normalised_separately(postprocess: Postprocess) -> None:
    # segment A [0, 10] -> 0, 1; segment B [100, 101, 102] -> 0, 0.5, 1. Threshold 0.6:
    # A gives 1 + 1, B 1 significant + 2 insignificant. Normalised together it would be 3 + 2.
    b = ragged([[[1, 1], [1, 1, 1]]])
    out = postprocess(values_of(0, 10, 100, 101, 102), b.cu_words, b.cu_segments,
                      b.cu_samples, 0.6, "values")  # fmt: skip
    assert out.word_values.tolist() == [0.0, 1.0, 0.0, 0.5, 1.0]
    assert out.significant.tolist() == [2] and out.insignificant.tolist() == [3]


def test_counts_sum_over_segments_and_stay_per_sample(postprocess: Postprocess) -> None:
    b = ragged([[[1, 1]], [[1], [1, 1, 1]]])
    out = postprocess(values_of(5, 1, 7, 3, 2, 1), b.cu_words, b.cu_segments, b.cu_samples,
                      0.5, "values")  # fmt: skip
    # sample 0: [1, 0]; sample 1: [1] then [1, 0.5, 0]
    assert out.word_values.tolist() == [1.0, 0.0, 1.0, 1.0, 0.5, 0.0]
    assert out.significant.tolist() == [1, 3] and out.insignificant.tolist() == [1, 1]


def test_empty_sample_and_empty_segment_get_zero(postprocess: Postprocess) -> None:
    # sample 0 has no segments, sample 1 one segment without words, sample 2 one word
    b = ragged([[], [[]], [[1]]])
    out = postprocess(values_of(0.2), b.cu_words, b.cu_segments, b.cu_samples, 0.5, "values",
                      **reward_args([False, False, True], [3.0, 3.0, 2.0], [2.0, 2.0, 2.0]),
                      k=-2.0)  # fmt: skip
    assert out.word_values.tolist() == [1.0]
    assert out.significant.tolist() == [0, 0, 1] and out.insignificant.tolist() == [0, 0, 0]
    # samples 0 and 1 are empty responses -> 0; sample 2: r_I = 0 -> c = 1 -> lambda_c
    assert out.length_reward.tolist() == [0.0, 0.0, 5.0]


def test_word_without_tokens_is_not_a_unit(postprocess: Postprocess) -> None:
    b = ragged([[[1, 0, 1]]])
    out = postprocess(values_of(4.0, 2.0), b.cu_words, b.cu_segments, b.cu_samples, 0.5,
                      "values")  # fmt: skip
    assert out.word_values.tolist() == [1.0, 0.0, 0.0]
    assert out.significant.tolist() == [1] and out.insignificant.tolist() == [1]


def test_degenerate_reference(postprocess: Postprocess) -> None:
    # ref I == 0 (sample 0, 1) or ref S == 0 (sample 2): both ratios are 0, so c = 1:
    # correct -> lambda_c; wrong -> min(0, 2 * 0 + k * 0 - lambda_w_e) = -lambda_w_e
    b = ragged([[[1, 1, 1]], [[1, 1, 1]], [[1, 1, 1]]])
    scores = values_of(0, 1, 2, 0, 1, 2, 0, 1, 2)
    out = postprocess(scores, b.cu_words, b.cu_segments, b.cu_samples, 0.5, "values",
                      **reward_args([True, False, False], [4.0, 4.0, 0.0], [0.0, 0.0, 3.0]),
                      lambda_c=4.0, lambda_w_e=3.0, k=7.0)  # fmt: skip
    assert out.length_reward.tolist() == [4.0, -3.0, -3.0]


def test_ratio_is_clamped_at_half_pi(postprocess: Postprocess) -> None:
    # one segment, values 0, 0, 0, 0, 1 -> S = 1, I = 4; ref (S, I) = (2, 1):
    # r_I = 4 > pi/2 -> c = cos(pi/2) = 0; correct -> 0;
    # wrong, k = 1: r_S = 0.5 -> min(0, 2 * (0 - 1) + 0.5 - 5) = -6.5
    b = ragged([[[1, 1, 1, 1, 1]], [[1, 1, 1, 1, 1]]])
    scores = values_of(0, 0, 0, 0, 1, 0, 0, 0, 0, 1)
    out = postprocess(scores, b.cu_words, b.cu_segments, b.cu_samples, 0.5, "values",
                      **reward_args([True, False], [2.0, 2.0], [1.0, 1.0]), k=1.0)  # fmt: skip
    assert out.significant.tolist() == [1, 1] and out.insignificant.tolist() == [4, 4]
    torch.testing.assert_close(out.length_reward, torch.tensor([0.0, -6.5]), atol=1e-6, rtol=0)


def test_negative_and_large_k_for_wrong_answers(postprocess: Postprocess) -> None:
    # values 0, 2, 3 -> 0, 2/3, 1: S = 2, I = 1; ref (S, I) = (1, 2): r_S = 2, r_I = 0.5
    # k = -2: 2 * (cos 0.5 - 1) - 4 - 5; k = 10: 2 * (cos 0.5 - 1) + 20 - 5 > 0 -> 0
    b = ragged([[[1, 1, 1]]])
    args = (values_of(0, 2, 3), b.cu_words, b.cu_segments, b.cu_samples, 0.5, "values")
    wrong = reward_args([False], [1.0], [2.0])
    negative = postprocess(*args, **wrong, k=-2.0)
    expected = 2.0 * (math.cos(0.5) - 1.0) - 4.0 - 5.0
    torch.testing.assert_close(negative.length_reward, torch.tensor([expected]))
    assert postprocess(*args, **wrong, k=10.0).length_reward.tolist() == [0.0]
    right = postprocess(*args, **reward_args([True], [1.0], [2.0]), k=-2.0)
    torch.testing.assert_close(right.length_reward, torch.tensor([5.0 * math.cos(0.5)]))


def test_bf16_scores_are_accumulated_in_fp32(postprocess: Postprocess) -> None:
    # 256 + 1 is not a bf16 number, so a bf16 accumulator would lose the 1s
    b = ragged([[[4, 1]]])
    scores = torch.tensor([256.0, 1.0, 1.0, 1.0, 0.0], dtype=torch.bfloat16)
    out = postprocess(scores, b.cu_words, b.cu_segments, b.cu_samples, 0.5, "values")
    assert out.word_values.dtype == torch.float32
    assert out.word_values.tolist() == [1.0, 0.0]


def test_empty_batch(postprocess: Postprocess) -> None:
    zero = torch.zeros(1, dtype=torch.int32)
    out = postprocess(torch.zeros(0), zero, zero, zero, 0.5, "values",
                      **reward_args([], [], []))  # fmt: skip
    assert out.word_values.shape == (0,) and out.significant.shape == (0,)
    assert out.insignificant.shape == (0,) and out.length_reward.shape == (0,)
