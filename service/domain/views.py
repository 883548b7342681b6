"""A run as GET /v1/runs/{run_id} shows it: its configuration, schedule and finished steps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sigreward.domain.run_config import RunConfig
from sigreward.domain.schedule import ScheduleState
from sigreward.store.base import RunRecord, StepRecord


@dataclass(frozen=True)
class HistoryEntry:
    """One finished step."""

    step: int
    score: float
    samples: int
    k_before: float
    k_after: float
    mean_significant: float | None
    mean_insignificant: float | None
    mean_length_reward_correct: float | None
    mean_length_reward_wrong: float | None
    degenerate_references: int


@dataclass(frozen=True)
class ScheduleView:
    """The run's schedule after its last finished step, and the steps it has seen."""

    k: float
    dynamic: bool
    low_slope_count: int
    last_finished_step: int | None
    k_warning: bool
    max_step: int | None
    finished_through: int | None
    history: list[HistoryEntry] = field(default_factory=list)


@dataclass(frozen=True)
class RunView:
    run_id: str
    config: RunConfig
    schedule: ScheduleView
    # Samples numbered by the server's counter (requests without a step), and requests
    # answered from a recent identical one (RetryCheck) instead of being counted again.
    counted_samples: int = 0
    suspected_retries: int = 0


def history_entry(row: StepRecord) -> HistoryEntry:
    def mean(total: float, n: int) -> float | None:
        return total / n if n else None

    return HistoryEntry(
        step=row.step,
        score=row.score_sum / row.samples,
        samples=row.samples,
        k_before=row.k_before,
        k_after=row.k_after if row.k_after is not None else row.k_before,
        mean_significant=mean(row.significant_sum, row.counted),
        mean_insignificant=mean(row.insignificant_sum, row.counted),
        mean_length_reward_correct=mean(row.lr_correct_sum, row.n_correct),
        mean_length_reward_wrong=mean(row.lr_wrong_sum, row.n_wrong),
        degenerate_references=row.degenerate,
    )


def run_view(
    record: RunRecord,
    finished: Sequence[StepRecord],
    counted_samples: int,
    suspected_retries: int,
) -> RunView:
    state = ScheduleState.from_json(record.schedule_json)
    return RunView(
        run_id=record.run_id,
        config=RunConfig.model_validate_json(record.config_json),
        schedule=ScheduleView(
            k=state.k,
            dynamic=state.dynamic,
            low_slope_count=state.low_slope_count,
            last_finished_step=state.last_finished_step,
            k_warning=state.k_warning,
            max_step=record.max_step,
            finished_through=record.finished_through,
            history=[history_entry(row) for row in finished],
        ),
        counted_samples=counted_samples,
        suspected_retries=suspected_retries,
    )
