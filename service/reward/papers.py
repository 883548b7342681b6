"""Length rewards of recent papers, each as its paper defines it (docs/method.md has the
equations, the arXiv ids and every choice made where a paper leaves a detail open).

Like the baselines, every function returns the *total* reward per sample with the sample's
score in place of the paper's correctness indicator; a prompt's group is its samples in one
request. ``params`` are already validated and complete (service/reward/params.py).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import Any

from sigreward.reward.inputs import BaselineSample, group_indices


def shorter_better(
    samples: Sequence[BaselineSample], params: Mapping[str, Any], step: int = 0
) -> list[float]:
    """ShorterBetter (arXiv 2504.21370): alpha * c - beta * |L - L_SOL|, where the sample
    optimal length L_SOL is the group's shortest correct length, or its mean length when no
    sample of the group is correct."""
    alpha, beta = float(params["alpha"]), float(params["beta"])
    out = [0.0] * len(samples)
    for members in group_indices(samples).values():
        every = [samples[i].num_tokens for i in members]
        correct = [samples[i].num_tokens for i in members if samples[i].correct]
        sol = min(correct) if correct else sum(every) / len(every)
        for i in members:
            s = samples[i]
            out[i] = alpha * s.score - beta * abs(s.num_tokens - sol)
    return out


def grpo_lead(
    samples: Sequence[BaselineSample], params: Mapping[str, Any], step: int = 0
) -> list[float]:
    """GRPO-LEAD's length-dependent accuracy reward with its explicit penalty (arXiv
    2504.09696): c * exp(-alpha * z) for a correct sample, z its length's standard score among
    the group's correct samples; ``incorrect`` for a wrong one."""
    alpha, eps = float(params["alpha"]), float(params["epsilon"])
    incorrect, ddof = float(params["incorrect"]), int(params["ddof"])
    out = [incorrect] * len(samples)
    for members in group_indices(samples).values():
        right = [i for i in members if samples[i].correct]
        if not right:
            continue
        lengths = [samples[i].num_tokens for i in right]
        mean = sum(lengths) / len(lengths)
        dof = len(lengths) - ddof
        # One correct sample has z = 0 whatever its spread; no division by a zero dof.
        std = math.sqrt(sum((x - mean) ** 2 for x in lengths) / dof) if dof > 0 else 0.0
        for i in right:
            z = (samples[i].num_tokens - mean) / (std + eps)
            out[i] = samples[i].score * math.exp(-alpha * z)
    return out


def alp(samples: Sequence[BaselineSample], params: Mapping[str, Any], step: int = 0) -> list[float]:
    """Adaptive Length Penalty (arXiv 2506.05256): c - beta / N * max(p_solved, 1/K) * L with
    p_solved the group's solve rate over its K samples."""
    scale = float(params["beta"]) / float(params["normalizer"])
    out = [0.0] * len(samples)
    for members in group_indices(samples).values():
        k = len(members)
        solved = sum(1 for i in members if samples[i].correct) / k
        weight = max(solved, 1.0 / k)
        for i in members:
            s = samples[i]
            out[i] = s.score - scale * weight * s.num_tokens
    return out


def laser(
    samples: Sequence[BaselineSample], params: Mapping[str, Any], step: int = 0
) -> list[float]:
    """LASER (arXiv 2505.15612): c + alpha * [correct and L <= L_T], a step function of length."""
    alpha, target = float(params["alpha"]), float(params["target_length"])
    return [s.score + (alpha if s.correct and s.num_tokens <= target else 0.0) for s in samples]


# LASER-D's difficulty buckets, by the accuracy of a prompt's group.
EASY, MEDIUM, HARD = "easy", "medium", "hard"


def difficulty(correct: int, size: int) -> str:
    """easy: accuracy >= 2/3; medium: 1/3 <= accuracy < 2/3; hard: below 1/3 (in integers, so
    4 of 6 is exactly 2/3)."""
    if 3 * correct >= 2 * size:
        return EASY
    if 3 * correct >= size:
        return MEDIUM
    return HARD


def guaranteed_correct(bucket: str, k: int) -> int:
    """floor(K * lower accuracy bound) of the bucket; 1 for hard prompts."""
    if bucket == EASY:
        return (2 * k) // 3
    if bucket == MEDIUM:
        return k // 3
    return 1


def target_candidates(low: float, high: float, step: float) -> list[float]:
    """min_target, min_target + step, ... up to max_target (inclusive)."""
    count = int(math.floor((high - low) / step + 1e-9)) + 1
    return [low + j * step for j in range(count)]


def laser_d_targets(
    samples: Sequence[BaselineSample], params: Mapping[str, Any]
) -> dict[str, float]:
    """Each bucket's target: the smallest candidate L whose expected correct responses
    floor(coverage(L) * guaranteed_correct) reach ``expected_correct``, coverage(L) being the
    share of the bucket's samples (correct or not) with length <= L. With none, the longest
    sample of the request, so every sample of the bucket meets it."""
    groups = group_indices(samples)
    k = max(len(members) for members in groups.values())
    lengths: dict[str, list[int]] = {EASY: [], MEDIUM: [], HARD: []}
    for members in groups.values():
        right = sum(1 for i in members if samples[i].correct)
        lengths[difficulty(right, len(members))].extend(samples[i].num_tokens for i in members)
    candidates = target_candidates(
        float(params["min_target"]), float(params["max_target"]), float(params["target_step"])
    )
    wanted = int(params["expected_correct"])
    fallback = float(max(s.num_tokens for s in samples))
    targets: dict[str, float] = {}
    for bucket, bucket_lengths in lengths.items():
        targets[bucket] = fallback
        ordered = sorted(bucket_lengths)
        n = len(ordered)
        for candidate in candidates:
            covered = bisect_right(ordered, candidate)
            # covered / n * C, floored, compared in integers: no rounding at the boundary.
            if n and (covered * guaranteed_correct(bucket, k)) // n >= wanted:
                targets[bucket] = candidate
                break
    return targets


def laser_d(
    samples: Sequence[BaselineSample], params: Mapping[str, Any], step: int = 0
) -> list[float]:
    """LASER-D (arXiv 2505.15612): LASER with the target of the group's difficulty bucket,
    the targets chosen by expected correct responses over this request's samples."""
    alpha = float(params["alpha"])
    targets = laser_d_targets(samples, params)
    out = [0.0] * len(samples)
    for members in group_indices(samples).values():
        right = sum(1 for i in members if samples[i].correct)
        target = targets[difficulty(right, len(members))]
        for i in members:
            s = samples[i]
            out[i] = s.score + (alpha if s.correct and s.num_tokens <= target else 0.0)
    return out


def limit_at(schedule: Sequence[Sequence[float]], step: int) -> float:
    """The limit of the last schedule entry whose step is <= ``step``."""
    limit = float(schedule[0][1])
    for start, value in schedule:
        if start > step:
            break
        limit = float(value)
    return limit


def thinkprune(
    samples: Sequence[BaselineSample], params: Mapping[str, Any], step: int = 0
) -> list[float]:
    """ThinkPrune (arXiv 2504.01296): a response longer than the step's token limit is cut
    there, its answer lost: reward ``exceed`` (the paper's 0); otherwise c."""
    limit, exceed = limit_at(params["schedule"], step), float(params["exceed"])
    return [s.score if s.num_tokens <= limit else exceed for s in samples]
