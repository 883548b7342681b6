"""Reward parameters keep the numeric meaning their schema states: a number is used as the real
number it is, an integer refuses a fraction, and every bad value names its field."""

import math

import pytest

from sigreward.reward import (
    BASELINE_PARAMS,
    REWARD_PARAMS,
    BaselineSample,
    RewardParamError,
    baseline_rewards,
    validate_reward_params,
)


def s(tokens: int, correct: bool = True) -> BaselineSample:
    return BaselineSample(1.0 if correct else 0.0, correct, tokens, "p")


def test_cosine_fractional_max_tokens_is_not_truncated() -> None:
    # L = 100 < 100.5: inside the window, not "exceed" (-10) as int(100.5) = 100 made it
    out = baseline_rewards("cosine", [s(100)], {"max_tokens": 100.5})
    assert out == pytest.approx([1 + (2 - 1) * (1 + math.cos(math.pi * 100 / 100.5)) / 2])
    assert out[0] > 1.0


def test_dapo_fractional_lengths_keep_their_value() -> None:
    # expected = 100 - 20.5 = 79.5; L = 80: (79.5 - 80) / 20.5, not 0 as with int(20.5) = 20
    out = baseline_rewards("dapo", [s(80)], {"max_tokens": 100, "cache_tokens": 20.5})
    assert out == pytest.approx([1 + (79.5 - 80) / 20.5])
    # cache 0.5 (int(0.5) = 0 divided by zero): expected 99.5, L = 100: (99.5 - 100) / 0.5 = -1
    out = baseline_rewards("dapo", [s(100)], {"max_tokens": 100, "cache_tokens": 0.5})
    assert out == pytest.approx([0.0])


def test_truncation_fractional_limit() -> None:
    assert baseline_rewards("truncation", [s(10), s(11)], {"max_tokens": 10.5}) == [1.0, 0.0]


def test_numbers_are_floats_and_integers_ints() -> None:
    got = validate_reward_params("grpo_lead", {"alpha": 1, "ddof": 0.0})
    assert got == {"alpha": 1.0, "ddof": 0}
    assert isinstance(got["alpha"], float) and isinstance(got["ddof"], int)


def test_defaults_fill_and_required_ones_are_named() -> None:
    full = validate_reward_params("laser_d", {"alpha": 1}, fill_defaults=True)
    assert full == {**BASELINE_PARAMS["laser_d"], "alpha": 1.0}
    for reward, name in [("truncation", "max_tokens"), ("laser", "target_length")]:
        with pytest.raises(RewardParamError) as info:
            validate_reward_params(reward, {}, fill_defaults=True)
        assert info.value.param == f"reward_params.{name}"
        assert "required" in str(info.value)
    with pytest.raises(RewardParamError) as info:
        validate_reward_params("thinkprune", {}, fill_defaults=True)
    assert info.value.param == "reward_params.schedule"


@pytest.mark.parametrize(
    ("reward", "params", "param"),
    [
        ("grpo_lead", {"ddof": 0.5}, "reward_params.ddof"),  # integer schema: no fraction
        ("grpo_lead", {"ddof": 2}, "reward_params.ddof"),  # 0 or 1
        ("laser_d", {"expected_correct": 1.5}, "reward_params.expected_correct"),
        ("laser_d", {"expected_correct": 0}, "reward_params.expected_correct"),
        ("cosine", {"max_tokens": 0}, "reward_params.max_tokens"),  # cos(pi * L / 0)
        ("dapo", {"cache_tokens": 0}, "reward_params.cache_tokens"),  # divides by it
        ("dapo", {"max_tokens": -1}, "reward_params.max_tokens"),
        ("kimi", {"weight": -0.5}, "reward_params.weight"),
        ("kimi", {"weight": True}, "reward_params.weight"),  # JSON true is not a number
        ("kimi", {"weight": "1"}, "reward_params.weight"),
        ("kimi", {"weight": None}, "reward_params.weight"),
        ("kimi", {"weight": float("nan")}, "reward_params.weight"),
        ("kimi", {"weight": float("inf")}, "reward_params.weight"),
        ("kimi", {"alpha": 1}, "reward_params.alpha"),  # unknown name
        ("grpo_lead", {"epsilon": 0}, "reward_params.epsilon"),
        ("alp", {"normalizer": 0}, "reward_params.normalizer"),
        ("laser", {"target_length": -1}, "reward_params.target_length"),
        ("laser_d", {"target_step": 0}, "reward_params.target_step"),
        ("laser_d", {"min_target": 500, "max_target": 400}, "reward_params.max_target"),
        ("laser_d", {"max_target": 100}, "reward_params.max_target"),  # below min's default
        ("laser_d", {"target_step": 0.001}, "reward_params.target_step"),  # > 10000 targets
        ("thinkprune", {"schedule": []}, "reward_params.schedule"),
        ("thinkprune", {"schedule": 4096}, "reward_params.schedule"),
        ("thinkprune", {"schedule": [[0, 100, 5]]}, "reward_params.schedule[0]"),
        ("thinkprune", {"schedule": [[5, 100]]}, "reward_params.schedule[0][0]"),
        ("thinkprune", {"schedule": [[0.5, 100]]}, "reward_params.schedule[0][0]"),
        ("thinkprune", {"schedule": [[0, 0]]}, "reward_params.schedule[0][1]"),
        ("thinkprune", {"schedule": [[0, 10], [0, 5]]}, "reward_params.schedule[1][0]"),
        ("thinkprune", {"schedule": [[0, 10], [-3, 5]]}, "reward_params.schedule[1][0]"),
        ("thinkprune", {"schedule": [[0, 10], [7, "x"]]}, "reward_params.schedule[1][1]"),
    ],
)
def test_bad_values_name_the_field(reward: str, params: dict, param: str) -> None:
    with pytest.raises(RewardParamError) as info:
        validate_reward_params(reward, params)
    assert info.value.param == param
    assert str(info.value).startswith(f"{param}: ")


def test_every_default_passes_its_own_schema() -> None:
    for reward, specs in REWARD_PARAMS.items():
        given = {k: spec.default for k, spec in specs.items() if spec.default is not None}
        assert validate_reward_params(reward, given) == given
