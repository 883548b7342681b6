"""The significance-aware length reward of docs/method.md#reward, as pure functions."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sigreward.bounds import MAX_RATIO
from sigreward.domain.results import Counts


@dataclass(frozen=True)
class SignificanceRewardParams:
    lambda_c: float = 5.0
    lambda_w_n: float = 2.0
    lambda_w_e: float = 5.0
    # "zero": the paper's rule (both ratios 0 against a reference that lacks a kind of unit);
    # "floor": every reference count is at least 1, so such a reference still gives a signal.
    degenerate_reference: str = "zero"


def cos_clamped(x: float) -> float:
    """c(x) = cos(clamp(x, 0, pi/2))."""
    return math.cos(min(max(x, 0.0), math.pi / 2))


def ratios(counts: Counts, reference: Counts, rule: str = "zero") -> tuple[float, float, bool]:
    """(r_I, r_S, degenerate), each ratio at most MAX_RATIO (so that k * r_S is finite against
    any accepted reference).

    ``degenerate`` is True when a non-empty response met a reference without significant or
    without insignificant units (docs/method.md#reward). Under the paper's rule ("zero") both
    ratios are then 0; under "floor" every reference count is taken as at least 1.
    """
    if counts.total <= 0:
        return 0.0, 0.0, False
    degenerate = not (reference.significant > 0 and reference.insignificant > 0)
    if rule == "floor":
        ref_insig, ref_sig = max(reference.insignificant, 1.0), max(reference.significant, 1.0)
    elif degenerate:
        return 0.0, 0.0, True
    else:
        ref_insig, ref_sig = reference.insignificant, reference.significant
    return (
        min(counts.insignificant / ref_insig, MAX_RATIO),
        min(counts.significant / ref_sig, MAX_RATIO),
        degenerate,
    )


def significance_length_reward(
    correct: bool,
    counts: Counts,
    reference: Counts,
    k: float,
    params: SignificanceRewardParams,
) -> tuple[float, bool]:
    """Length reward R_len of one sample and whether the degenerate-reference rule fired."""
    if counts.total <= 0:
        return 0.0, False
    r_insig, r_sig, degenerate = ratios(counts, reference, params.degenerate_reference)
    if correct:
        return params.lambda_c * cos_clamped(r_insig), degenerate
    wrong = params.lambda_w_n * (cos_clamped(r_insig) - 1.0) + k * r_sig - params.lambda_w_e
    return min(0.0, wrong), degenerate
