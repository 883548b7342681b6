"""Reward formulas: the paper's significance-aware length reward, the length baselines and the
length rewards of recent papers."""

from sigreward.reward.baselines import (
    BASELINE_PARAMS,
    BASELINES,
    GROUP_REWARDS,
    BaselineSample,
    baseline_rewards,
)
from sigreward.reward.params import REWARD_PARAMS, RewardParamError, validate_reward_params
from sigreward.reward.significance import (
    SignificanceRewardParams,
    cos_clamped,
    significance_length_reward,
)

__all__ = [
    "BASELINES",
    "BASELINE_PARAMS",
    "GROUP_REWARDS",
    "REWARD_PARAMS",
    "BaselineSample",
    "RewardParamError",
    "SignificanceRewardParams",
    "baseline_rewards",
    "cos_clamped",
    "significance_length_reward",
    "validate_reward_params",
]
