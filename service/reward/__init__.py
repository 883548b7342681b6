"""Reward formulas: the paper's significance-aware length reward and the length baselines."""

from service.reward.baselines import BASELINE_PARAMS, BASELINES, BaselineSample, baseline_rewards
from service.reward.significance import (
    SignificanceRewardParams,
    cos_clamped,
    significance_length_reward,
)

__all__ = [
    "BASELINES",
    "BASELINE_PARAMS",
    "BaselineSample",
    "SignificanceRewardParams",
    "baseline_rewards",
    "cos_clamped",
    "significance_length_reward",
]
