"""Rules on a run's steps: how far past the highest one a request may jump, and how counted
samples add to a step's aggregates (never to a sum that is not a number)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from sigreward.domain.errors import SampleError, StepTooFar
from sigreward.domain.results import SampleResult
from sigreward.domain.run_config import RunConfig
from sigreward.domain.samples import SampleInput
from sigreward.store.base import RunRecord, StepRecord


def check_step_jump(record: RunRecord, config: RunConfig, step: int) -> None:
    """``StepTooFar`` when ``step`` is past the run's highest step by more than allowed."""
    highest = max(
        record.max_step if record.max_step is not None else 0,
        record.finished_through if record.finished_through is not None else 0,
    )
    if step - highest > config.max_step_jump:
        raise StepTooFar(record.run_id, step, highest, config.max_step_jump)


def check_finite(row: StepRecord, counted: Sequence[tuple[SampleInput, SampleResult]]) -> None:
    """``SampleError`` naming the first sample whose numbers would make the step's sums or a
    reward non-finite. The bounds on accepted numbers keep this from firing; it is the last
    guard that keeps one request from storing a value every later request would fail on."""
    for sample, result in counted:
        if not (math.isfinite(result.reward) and math.isfinite(result.length_reward)):
            raise SampleError(sample.index, "score", "the reward of this sample is not finite")
    sums = (
        row.score_sum,
        row.significant_sum,
        row.insignificant_sum,
        row.lr_correct_sum,
        row.lr_wrong_sum,
    )
    if not all(math.isfinite(value) for value in sums) and counted:
        raise SampleError(
            counted[0][0].index, "score", "the step's sums would overflow; send smaller numbers"
        )


def add_to_step(row: StepRecord, counted: Sequence[tuple[SampleInput, SampleResult]]) -> None:
    """Add the counted samples and their results to the step's aggregates in ``row``;
    ``SampleError`` (``check_finite``) when a sum would stop being a number."""
    for sample, result in counted:
        row.samples += 1
        row.score_sum += sample.score
        if sample.counts is not None:
            row.counted += 1
            row.significant_sum += sample.counts.significant
            row.insignificant_sum += sample.counts.insignificant
        if sample.correct:
            row.n_correct += 1
            row.lr_correct_sum += result.length_reward
        else:
            row.n_wrong += 1
            row.lr_wrong_sum += result.length_reward
        row.degenerate += int(result.degenerate_reference)
    check_finite(row, counted)
