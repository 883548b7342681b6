"""The significance-aware length reward of docs/method.md#reward, as pure functions."""

from __future__ import annotations

import math
from dataclasses import dataclass

from service.bounds import MAX_RATIO
from service.types import Counts


@dataclass(frozen=True)
class SignificanceRewardParams:
    lambda_c: float = 5.0
    lambda_w_n: float = 2.0
    lambda_w_e: float = 5.0


def cos_clamped(x: float) -> float:
    """c(x) = cos(clamp(x, 0, pi/2))."""
    return math.cos(min(max(x, 0.0), math.pi / 2))


def ratios(counts: Counts, reference: Counts) -> tuple[float, float, bool]:
    """(r_I, r_S, degenerate): both ratios are 0 when the reference lacks either kind of unit,
    and at most MAX_RATIO (so that k * r_S is finite against any accepted reference).

    ``degenerate`` is True only when a non-empty response met such a reference (the rule of
    docs/method.md#reward that users should see fire).
    """
    if counts.total > 0 and reference.significant > 0 and reference.insignificant > 0:
        return (
            min(counts.insignificant / reference.insignificant, MAX_RATIO),
            min(counts.significant / reference.significant, MAX_RATIO),
            False,
        )
    return 0.0, 0.0, counts.total > 0


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
    r_insig, r_sig, degenerate = ratios(counts, reference)
    if correct:
        return params.lambda_c * cos_clamped(r_insig), degenerate
    wrong = params.lambda_w_n * (cos_clamped(r_insig) - 1.0) + k * r_sig - params.lambda_w_e
    return min(0.0, wrong), degenerate
