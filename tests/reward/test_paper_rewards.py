"""Hand-computed vectors of the length rewards of recent papers (docs/method.md).

Every expected value is written as the arithmetic of the paper's definition, so a reader can
check it against the paper without running anything.
"""

import math

import pytest

from sigreward.reward import BaselineSample, baseline_rewards
from sigreward.reward.papers import laser_d_targets, limit_at


def s(tokens: int, correct: bool = True, prompt: str | None = "p", score: float | None = None):
    return BaselineSample(
        score=(1.0 if correct else 0.0) if score is None else score,
        correct=correct,
        num_tokens=tokens,
        prompt_id=prompt,
    )


# -- ShorterBetter (arXiv 2504.21370) -----------------------------------------------------------
def test_shorter_better_uses_the_shortest_correct_length_of_the_group() -> None:
    samples = [s(500), s(300), s(800, False), s(200, False)]
    out = baseline_rewards("shorter_better", samples, {})  # alpha 2, beta 0.001
    # L_SOL = min(500, 300) = 300 (the wrong 200 does not count)
    assert out == pytest.approx(
        [
            2 * 1 - 0.001 * abs(500 - 300),  # 1.8
            2 * 1 - 0.001 * abs(300 - 300),  # 2.0
            2 * 0 - 0.001 * abs(800 - 300),  # -0.5
            2 * 0 - 0.001 * abs(200 - 300),  # -0.1
        ]
    )


def test_shorter_better_without_a_correct_sample_uses_the_mean_length() -> None:
    samples = [s(100, False, "q"), s(300, False, "q"), s(400, prompt="r", score=0.5)]
    out = baseline_rewards("shorter_better", samples, {"alpha": 1.0, "beta": 0.01})
    # group q: L_SOL = (100 + 300) / 2 = 200; group r: L_SOL = 400, alpha * score = 0.5
    assert out == pytest.approx([-0.01 * 100, -0.01 * 100, 1.0 * 0.5 - 0.0])


# -- GRPO-LEAD (arXiv 2504.09696) ---------------------------------------------------------------
def test_grpo_lead_standardises_length_among_correct_samples() -> None:
    samples = [s(100), s(200), s(300), s(50, False)]
    out = baseline_rewards("grpo_lead", samples, {})  # alpha 0.05, eps 1e-6, ddof 1, -1
    # correct lengths 100, 200, 300: mean 200, sample std sqrt((100^2 + 0 + 100^2) / 2) = 100
    z = [(x - 200) / (100 + 1e-6) for x in (100, 200, 300)]
    assert out == pytest.approx([math.exp(-0.05 * z[0]), 1.0, math.exp(-0.05 * z[2]), -1.0])
    assert out[0] == pytest.approx(math.exp(0.05), rel=1e-7)  # shorter than the mean: > 1


def test_grpo_lead_population_std_single_correct_and_no_penalty() -> None:
    samples = [s(100), s(300), s(40, prompt="one"), s(70, False, "one"), s(9, False, "none")]
    params = {"ddof": 0, "incorrect": 0.0, "alpha": 0.1}
    out = baseline_rewards("grpo_lead", samples, params)
    # group p: mean 200, population std sqrt((100^2 + 100^2) / 2) = 100 -> z = -1, +1
    # group one: a single correct sample has z = 0 -> exp(0) = 1; wrong samples get 0.0
    assert out == pytest.approx(
        [math.exp(0.1 * 100 / (100 + 1e-6)), math.exp(-0.1 * 100 / (100 + 1e-6)), 1.0, 0.0, 0.0]
    )


# -- ALP (arXiv 2506.05256) ---------------------------------------------------------------------
def test_alp_scales_the_penalty_by_the_solve_rate() -> None:
    samples = [s(100), s(200), s(400), s(1000, False)]
    out = baseline_rewards("alp", samples, {"beta": 0.1, "normalizer": 1000})
    # K = 4, 3 correct: p = 0.75 = max(0.75, 1/4); beta / N = 1e-4
    assert out == pytest.approx(
        [
            1 - 1e-4 * 0.75 * 100,  # 0.9925
            1 - 1e-4 * 0.75 * 200,  # 0.985
            1 - 1e-4 * 0.75 * 400,  # 0.97
            0 - 1e-4 * 0.75 * 1000,  # -0.075
        ]
    )


def test_alp_floors_the_solve_rate_at_one_over_k() -> None:
    samples = [s(100, False, "hard"), s(300, False, "hard")]
    out = baseline_rewards("alp", samples, {"beta": 0.1, "normalizer": 1000})
    # nobody solved it: max(0, 1/2) = 0.5
    assert out == pytest.approx([-1e-4 * 0.5 * 100, -1e-4 * 0.5 * 300])


def test_alp_defaults() -> None:
    out = baseline_rewards("alp", [s(8192), s(0, False)], {})
    # beta 0.05, N 8192, K = 2, p = 1/2: 1 - 0.05 / 8192 * 0.5 * 8192 = 0.975
    assert out == pytest.approx([1 - 0.05 * 0.5, 0.0])


# -- LASER (arXiv 2505.15612) -------------------------------------------------------------------
def test_laser_step_bonus_for_correct_samples_within_the_target() -> None:
    samples = [s(900), s(1000), s(1001), s(500, False)]
    out = baseline_rewards("laser", samples, {"target_length": 1000})
    # alpha 0.5 for correct and L <= 1000; nothing for the wrong sample
    assert out == pytest.approx([1.5, 1.5, 1.0, 0.0])


def test_laser_fractional_target_keeps_its_value() -> None:
    assert baseline_rewards("laser", [s(1000)], {"target_length": 1000.5}) == [1.5]
    assert baseline_rewards("laser", [s(1000)], {"target_length": 999.5}) == [1.0]


# -- LASER-D (arXiv 2505.15612) -----------------------------------------------------------------
LASER_D_PARAMS = {"min_target": 100, "max_target": 400, "target_step": 100}
# Candidates 100, 200, 300, 400. K = 4 (the largest group).
LASER_D_SAMPLES = [
    # easy (3 of 3 correct, 3*3 >= 2*3): C = floor(4 * 2/3) = 2
    s(150, prompt="e"),
    s(250, prompt="e"),
    s(350, prompt="e"),
    # medium (1 of 3, 3*1 >= 3): C = floor(4 / 3) = 1
    s(120, prompt="m"),
    s(180, False, "m"),
    s(390, False, "m"),
    # hard (1 of 4, 3*1 < 4): C = 1
    s(80, prompt="h"),
    s(90, False, "h"),
    s(95, False, "h"),
    s(500, False, "h"),
]


def test_laser_d_targets_by_expected_correct_responses() -> None:
    params = {**LASER_D_PARAMS, "expected_correct": 1}
    targets = laser_d_targets(LASER_D_SAMPLES, params)
    # easy lengths 150, 250, 350: floor(cov * 2) >= 1 needs cov >= 1/2;
    #   cov(100) = 0, cov(200) = 1/3 -> floor(2/3) = 0, cov(300) = 2/3 -> floor(4/3) = 1: 300
    # medium lengths 120, 180, 390: C = 1 needs cov = 1: first candidate >= 390 is 400
    # hard lengths 80, 90, 95, 500: cov = 1 needs >= 500, no candidate: the request's longest, 500
    assert targets == {"easy": 300.0, "medium": 400.0, "hard": 500.0}


def test_laser_d_rewards_use_the_target_of_the_group_bucket() -> None:
    out = baseline_rewards("laser_d", LASER_D_SAMPLES, LASER_D_PARAMS)
    # easy target 300: 150, 250 get +0.5, 350 does not; medium 400: 120 gets +0.5;
    # hard 500: 80 gets +0.5; wrong samples keep their score 0
    assert out == pytest.approx([1.5, 1.5, 1.0, 1.5, 0.0, 0.0, 1.5, 0.0, 0.0, 0.0])


def test_laser_d_more_expected_correct_responses_loosen_the_target() -> None:
    params = {**LASER_D_PARAMS, "expected_correct": 2}
    # easy: floor(cov * 2) >= 2 needs cov = 1: 400
    assert laser_d_targets(LASER_D_SAMPLES, params)["easy"] == 400.0


# -- ThinkPrune (arXiv 2504.01296) --------------------------------------------------------------
SCHEDULE = [[0, 4000], [100, 3000], [200, 2000]]


def test_thinkprune_limit_schedule() -> None:
    assert [limit_at(SCHEDULE, t) for t in (0, 99, 100, 199, 200, 10**6)] == [
        4000,
        4000,
        3000,
        3000,
        2000,
        2000,
    ]


def test_thinkprune_rewards_zero_past_the_step_limit() -> None:
    samples = [s(3500), s(2000), s(2001), s(100, False)]
    params = {"schedule": SCHEDULE}
    assert baseline_rewards("thinkprune", samples, params, step=50) == [1.0, 1.0, 1.0, 0.0]
    assert baseline_rewards("thinkprune", samples, params, step=150) == [0.0, 1.0, 1.0, 0.0]
    # at step 200 the limit is 2000: 2000 is kept, 2001 is cut
    assert baseline_rewards("thinkprune", samples, params, step=200) == [0.0, 1.0, 0.0, 0.0]
    # exceed replaces the paper's 0 for a cut response, e.g. to match a client's wrong score
    params = {"schedule": SCHEDULE, "exceed": -0.5}
    assert baseline_rewards("thinkprune", samples, params, step=200) == [-0.5, 1.0, -0.5, 0.0]
