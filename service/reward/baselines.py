"""Length-reward baselines (docs/api.md "Baselines"), each a pure function, and the registry of
every length reward a run can name instead of the paper's.

Every function returns the *total* reward per sample with the sample's score in place of the
outcome c; the caller derives length_reward = reward - score. Parameters are used with the
type their schema states (service/reward/params.py): token lengths are real numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sigreward.reward import papers
from sigreward.reward.inputs import BaselineSample, group_indices
from sigreward.reward.params import BASELINE_PARAMS, validate_reward_params

# (samples of one request, parameters, the request's step) -> total reward per sample.
BaselineFn = Callable[[Sequence[BaselineSample], Mapping[str, Any], int], list[float]]

__all__ = ["BASELINES", "BASELINE_PARAMS", "GROUP_REWARDS", "BaselineSample", "baseline_rewards"]


def kimi(
    samples: Sequence[BaselineSample], params: Mapping[str, Any], step: int = 0
) -> list[float]:
    """Kimi k1.5 (arXiv 2501.12599): lam = 0.5 - (L - Lmin)/(Lmax - Lmin) over the group."""
    weight = float(params["weight"])
    out = [0.0] * len(samples)
    for members in group_indices(samples).values():
        lengths = [samples[i].num_tokens for i in members]
        lo, hi = min(lengths), max(lengths)
        for i in members:
            s = samples[i]
            lam = 0.0 if hi == lo else 0.5 - (s.num_tokens - lo) / (hi - lo)
            term = lam if s.correct else min(0.0, lam)
            out[i] = s.score + weight * term
    return out


def cosine(
    samples: Sequence[BaselineSample], params: Mapping[str, Any], step: int = 0
) -> list[float]:
    """Cosine length scaling (Yeo et al., arXiv 2502.03373)."""
    max_tokens = float(params["max_tokens"])
    out = []
    for s in samples:
        if s.num_tokens >= max_tokens:
            out.append(float(params["exceed"]))
            continue
        if s.correct:
            r0, rl = float(params["correct_short"]), float(params["correct_long"])
        else:
            r0, rl = float(params["wrong_short"]), float(params["wrong_long"])
        out.append(rl + (r0 - rl) * (1.0 + math.cos(math.pi * s.num_tokens / max_tokens)) / 2.0)
    return out


def dapo(
    samples: Sequence[BaselineSample], params: Mapping[str, Any], step: int = 0
) -> list[float]:
    """DAPO soft overlong punishment (arXiv 2503.14476)."""
    max_tokens = float(params["max_tokens"])
    cache = float(params["cache_tokens"])
    factor = float(params["factor"])
    out = []
    for s in samples:
        expected = max_tokens - cache
        if s.num_tokens <= expected:
            penalty = 0.0
        elif s.num_tokens <= max_tokens:
            penalty = (expected - s.num_tokens) / cache
        else:
            penalty = -1.0
        out.append(s.score + factor * penalty)
    return out


def l1_exact(
    samples: Sequence[BaselineSample], params: Mapping[str, Any], step: int = 0
) -> list[float]:
    """L1-Exact (arXiv 2503.04697): c - alpha * |n_target - L|."""
    alpha = float(params["alpha"])
    return [s.score - alpha * abs(_target(s) - s.num_tokens) for s in samples]


def l1_max(
    samples: Sequence[BaselineSample], params: Mapping[str, Any], step: int = 0
) -> list[float]:
    """L1-Max (arXiv 2503.04697): c * clip(alpha * (n_target - L) + delta, 0, 1)."""
    alpha = float(params["alpha"])
    delta = float(params["delta"])
    return [
        s.score * min(1.0, max(0.0, alpha * (_target(s) - s.num_tokens) + delta)) for s in samples
    ]


def arora_zanette(
    samples: Sequence[BaselineSample], params: Mapping[str, Any], step: int = 0
) -> list[float]:
    """Arora & Zanette (arXiv 2502.04463): statistics over the group's correct responses."""
    alpha = float(params["alpha"])
    out = [s.score for s in samples]
    for members in group_indices(samples).values():
        lengths = [samples[i].num_tokens for i in members if samples[i].correct]
        if not lengths:
            continue
        mean = sum(lengths) / len(lengths)
        std = math.sqrt(sum((x - mean) ** 2 for x in lengths) / len(lengths))
        for i in members:
            s = samples[i]
            z = (s.num_tokens - mean) / (std + 1e-7)
            out[i] = s.score * (1.0 - alpha * _sigmoid(z))
    return out


def truncation(
    samples: Sequence[BaselineSample], params: Mapping[str, Any], step: int = 0
) -> list[float]:
    """Hard truncation: c * [L <= max_tokens]."""
    max_tokens = float(params["max_tokens"])
    return [s.score if s.num_tokens <= max_tokens else 0.0 for s in samples]


def _target(sample: BaselineSample) -> int:
    if sample.target_tokens is None:
        raise ValueError("target_tokens is required by the L1 rewards")
    return sample.target_tokens


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


BASELINES: dict[str, BaselineFn] = {
    "kimi": kimi,
    "cosine": cosine,
    "dapo": dapo,
    "l1_exact": l1_exact,
    "l1_max": l1_max,
    "arora_zanette": arora_zanette,
    "truncation": truncation,
    "shorter_better": papers.shorter_better,
    "grpo_lead": papers.grpo_lead,
    "alp": papers.alp,
    "laser": papers.laser,
    "laser_d": papers.laser_d,
    "thinkprune": papers.thinkprune,
}

# Rewards whose formula uses statistics of the prompt's group: their samples need prompt_id.
GROUP_REWARDS = ("kimi", "arora_zanette", "shorter_better", "grpo_lead", "alp", "laser_d")


def baseline_rewards(
    name: str, samples: Sequence[BaselineSample], params: Mapping[str, Any], step: int = 0
) -> list[float]:
    """Total rewards of the named reward for one request at ``step``; published defaults fill
    omitted parameters, and bad ones raise ``RewardParamError``."""
    return BASELINES[name](samples, validate_reward_params(name, params, fill_defaults=True), step)
