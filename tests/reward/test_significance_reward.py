"""Hand-worked cases of the paper's length reward (docs/method.md#reward)."""

import math

import pytest

from sigreward.domain.results import Counts
from sigreward.reward import SignificanceRewardParams, cos_clamped, significance_length_reward

PAPER = SignificanceRewardParams(lambda_c=5.0, lambda_w_n=2.0, lambda_w_e=5.0)


def test_correct_answer_with_half_the_reference_insignificant_units() -> None:
    # r_I = 10/20 = 0.5 -> 5 * cos(0.5)
    reward, degenerate = significance_length_reward(
        True, Counts(30, 10), Counts(40, 20), k=3.0, params=PAPER
    )
    assert reward == pytest.approx(5 * 0.8775825618903728)
    assert degenerate is False


def test_correct_answer_ratio_past_half_pi_is_clamped_to_zero_reward() -> None:
    reward, _ = significance_length_reward(True, Counts(1, 100), Counts(1, 10), 0.0, PAPER)
    assert reward == pytest.approx(0.0, abs=1e-12)


def test_wrong_answer_positive_k_softens_the_penalty() -> None:
    # r_I = 0.5, r_S = 1.5: 2*(cos .5 - 1) + 3.18*1.5 - 5 = -0.2448... + 4.77 - 5
    expected = 2 * (0.8775825618903728 - 1) + 3.18 * 1.5 - 5
    reward, _ = significance_length_reward(False, Counts(60, 10), Counts(40, 20), 3.18, PAPER)
    assert reward == pytest.approx(expected)
    assert reward < 0


def test_wrong_answer_is_never_positive() -> None:
    reward, _ = significance_length_reward(False, Counts(400, 0), Counts(40, 20), 10.0, PAPER)
    assert reward == 0.0


def test_wrong_answer_negative_k_adds_penalty() -> None:
    # r_I = 1, r_S = 1: 2*(cos 1 - 1) - 2*1 - 5
    expected = 2 * (math.cos(1.0) - 1) - 2.0 - 5
    reward, _ = significance_length_reward(False, Counts(40, 20), Counts(40, 20), -2.0, PAPER)
    assert reward == pytest.approx(expected)


def test_empty_response_gets_zero_whatever_the_outcome() -> None:
    for correct in (True, False):
        reward, degenerate = significance_length_reward(
            correct, Counts(0, 0), Counts(40, 20), 3.0, PAPER
        )
        assert reward == 0.0
        assert degenerate is False


@pytest.mark.parametrize("reference", [Counts(40, 0), Counts(0, 20), Counts(0, 0)])
def test_reference_without_one_kind_of_unit_zeroes_both_ratios(reference: Counts) -> None:
    correct, flag_c = significance_length_reward(True, Counts(5, 50), reference, 3.0, PAPER)
    wrong, flag_w = significance_length_reward(False, Counts(5, 50), reference, 3.0, PAPER)
    assert correct == 5.0  # lambda_c * cos(0)
    assert wrong == -5.0  # min(0, 2*(1-1) + k*0 - 5)
    assert flag_c and flag_w


def test_cos_clamped_bounds() -> None:
    assert cos_clamped(-1.0) == 1.0
    assert cos_clamped(10.0) == pytest.approx(0.0, abs=1e-15)
    assert cos_clamped(math.pi / 3) == pytest.approx(0.5)


FLOOR = SignificanceRewardParams(5.0, 2.0, 5.0, degenerate_reference="floor")


def test_floor_rule_gives_a_reference_without_insignificant_units_one() -> None:
    # Reference (40 significant, 0 insignificant) -> I_ref taken as 1.
    # correct, I = 1: r_I = 1/1 -> 5 * cos(1); I = 0: r_I = 0 -> 5 * cos(0) = 5.
    reward, degenerate = significance_length_reward(True, Counts(30, 1), Counts(40, 0), 3.0, FLOOR)
    assert reward == pytest.approx(5 * math.cos(1.0))
    assert degenerate is True  # still reported: the reference lacked a kind of unit
    reward, _ = significance_length_reward(True, Counts(30, 0), Counts(40, 0), 3.0, FLOOR)
    assert reward == 5.0
    # wrong, S = 20, I = 1, k = 2: r_I = 1, r_S = 20/40 = 0.5 -> 2*(cos 1 - 1) + 2*0.5 - 5
    reward, _ = significance_length_reward(False, Counts(20, 1), Counts(40, 0), 2.0, FLOOR)
    assert reward == pytest.approx(2 * (math.cos(1.0) - 1) + 1.0 - 5)


def test_floor_rule_leaves_ordinary_references_alone() -> None:
    for counts, reference in ((Counts(30, 10), Counts(40, 20)), (Counts(60, 10), Counts(1.5, 2))):
        for correct in (True, False):
            paper = significance_length_reward(correct, counts, reference, 3.18, PAPER)
            floor = significance_length_reward(correct, counts, reference, 3.18, FLOOR)
            assert paper == floor


def test_floor_rule_raises_a_fractional_reference_count_to_one() -> None:
    # A group mean of 0.5 insignificant units counts as 1: r_I = 2/1 = 2 > pi/2 -> cos 0.
    reward, degenerate = significance_length_reward(True, Counts(3, 2), Counts(4, 0.5), 0.0, FLOOR)
    assert reward == pytest.approx(0.0, abs=1e-12)
    assert degenerate is False
