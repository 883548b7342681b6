"""Length-reward baselines of method.md section 6 (api.md "Baselines"), each a pure function.

Every function returns the *total* reward per sample with the sample's score in place of the
outcome c; the caller derives length_reward = reward - score.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BaselineSample:
    score: float
    correct: bool
    num_tokens: int
    prompt_id: str | None = None
    target_tokens: int | None = None


BaselineFn = Callable[[Sequence[BaselineSample], Mapping[str, Any]], list[float]]


def _groups(samples: Sequence[BaselineSample]) -> dict[str | None, list[int]]:
    groups: dict[str | None, list[int]] = {}
    for i, sample in enumerate(samples):
        groups.setdefault(sample.prompt_id, []).append(i)
    return groups


def kimi(samples: Sequence[BaselineSample], params: Mapping[str, Any]) -> list[float]:
    """Kimi k1.5 (arXiv 2501.12599): lam = 0.5 - (L - Lmin)/(Lmax - Lmin) over the group."""
    weight = float(params.get("weight", 1.0))
    out = [0.0] * len(samples)
    for members in _groups(samples).values():
        lengths = [samples[i].num_tokens for i in members]
        lo, hi = min(lengths), max(lengths)
        for i in members:
            s = samples[i]
            lam = 0.0 if hi == lo else 0.5 - (s.num_tokens - lo) / (hi - lo)
            term = lam if s.correct else min(0.0, lam)
            out[i] = s.score + weight * term
    return out


def cosine(samples: Sequence[BaselineSample], params: Mapping[str, Any]) -> list[float]:
    """Cosine length scaling (Yeo et al., arXiv 2502.03373)."""
    max_tokens = int(params.get("max_tokens", 14336))
    out = []
    for s in samples:
        if s.num_tokens >= max_tokens:
            out.append(float(params.get("exceed", -10.0)))
            continue
        if s.correct:
            r0, rl = float(params.get("correct_short", 2.0)), float(params.get("correct_long", 1.0))
        else:
            r0, rl = float(params.get("wrong_short", -10.0)), float(params.get("wrong_long", 0.0))
        out.append(rl + (r0 - rl) * (1.0 + math.cos(math.pi * s.num_tokens / max_tokens)) / 2.0)
    return out


def dapo(samples: Sequence[BaselineSample], params: Mapping[str, Any]) -> list[float]:
    """DAPO soft overlong punishment (arXiv 2503.14476)."""
    max_tokens = int(params.get("max_tokens", 20480))
    cache = int(params.get("cache_tokens", 4096))
    factor = float(params.get("factor", 1.0))
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


def l1_exact(samples: Sequence[BaselineSample], params: Mapping[str, Any]) -> list[float]:
    """L1-Exact (arXiv 2503.04697): c - alpha * |n_target - L|."""
    alpha = float(params.get("alpha", 0.0003))
    return [s.score - alpha * abs(_target(s) - s.num_tokens) for s in samples]


def l1_max(samples: Sequence[BaselineSample], params: Mapping[str, Any]) -> list[float]:
    """L1-Max (arXiv 2503.04697): c * clip(alpha * (n_target - L) + delta, 0, 1)."""
    alpha = float(params.get("alpha", 0.0003))
    delta = float(params.get("delta", 0.5))
    return [
        s.score * min(1.0, max(0.0, alpha * (_target(s) - s.num_tokens) + delta)) for s in samples
    ]


def arora_zanette(samples: Sequence[BaselineSample], params: Mapping[str, Any]) -> list[float]:
    """Arora & Zanette (arXiv 2502.04463): statistics over the group's correct responses."""
    alpha = float(params.get("alpha", 0.1))
    out = [s.score for s in samples]
    for members in _groups(samples).values():
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


def truncation(samples: Sequence[BaselineSample], params: Mapping[str, Any]) -> list[float]:
    """Hard truncation: c * [L <= max_tokens]."""
    max_tokens = int(params["max_tokens"])
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
}

# Parameters each baseline accepts and their published defaults (None = required).
BASELINE_PARAMS: dict[str, dict[str, float | None]] = {
    "kimi": {"weight": 1.0},
    "cosine": {
        "max_tokens": 14336,
        "correct_short": 2.0,
        "correct_long": 1.0,
        "wrong_short": -10.0,
        "wrong_long": 0.0,
        "exceed": -10.0,
    },
    "dapo": {"max_tokens": 20480, "cache_tokens": 4096, "factor": 1.0},
    "l1_exact": {"alpha": 0.0003},
    "l1_max": {"alpha": 0.0003, "delta": 0.5},
    "arora_zanette": {"alpha": 0.1},
    "truncation": {"max_tokens": None},
}


def baseline_rewards(
    name: str, samples: Sequence[BaselineSample], params: Mapping[str, Any]
) -> list[float]:
    """Total rewards of the named baseline, published defaults filling omitted parameters."""
    return BASELINES[name](samples, params)
