"""The narrow store interface ``RunService`` (service/domain/runs.py) talks to, and the records it moves.

A store hands out transactions. ``Store.write()`` opens a write transaction; the first call on
it that names a run (``ensure_run`` / ``lock_run``) serialises it against every other write
transaction on that run (``SELECT ... FOR UPDATE`` in PostgreSQL, ``BEGIN IMMEDIATE`` in SQLite),
so finishing a step, pinning a reference or counting a sample happens exactly once even with
several replicas. Leaving the ``with`` block commits (durably) or, on an exception, rolls back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from sigreward.domain.results import Counts


@dataclass
class RunRecord:
    run_id: str
    config_json: str
    schedule_json: str
    max_step: int | None = None  # highest step that received a counted request
    finished_through: int | None = None  # highest step finished explicitly


@dataclass
class StepRecord:
    """Per-step aggregates over the counted (non-late, non-duplicate) samples."""

    run_id: str
    step: int
    k_before: float
    dynamic_before: bool
    low_before: int
    samples: int = 0
    score_sum: float = 0.0
    counted: int = 0  # samples that carried significance counts
    significant_sum: float = 0.0
    insignificant_sum: float = 0.0
    lr_correct_sum: float = 0.0
    n_correct: int = 0
    lr_wrong_sum: float = 0.0
    n_wrong: int = 0
    degenerate: int = 0
    finished: bool = False
    k_after: float | None = None
    state_after_json: str | None = None  # schedule state after this step finished


@dataclass(frozen=True)
class FingerprintRecord:
    """A recent request without sample ids: its step, its answer and when it was stored."""

    step: int
    result_json: str
    seen_at: float  # seconds since the epoch


class StoreUnavailable(RuntimeError):
    """The store cannot be reached (database down, restarting, unreachable). Retryable: the
    API answers 503 with Retry-After, and nothing was committed by the failed transaction."""


class Transaction(Protocol):
    def ensure_run(self, record: RunRecord) -> tuple[RunRecord, bool]:
        """Insert ``record`` unless the run exists; lock the run; return (stored, created)."""
        ...

    def lock_run(self, run_id: str) -> RunRecord | None:
        """The run, locked for the rest of the transaction; None when absent."""
        ...

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def update_run(self, record: RunRecord) -> None: ...

    def delete_run(self, run_id: str) -> bool:
        """Remove the run and everything it owns; False when it did not exist."""
        ...

    def list_runs(self) -> list[str]: ...

    def add_to_counter(self, run_id: str, name: str, n: int) -> int:
        """Add ``n`` to the run's counter ``name`` (a missing counter is 0) and return its
        value before the addition. Call it after ``lock_run`` / ``ensure_run``: the run's lock
        makes the counter exact across threads and replicas. ``delete_run`` removes it."""
        ...

    def get_counter(self, run_id: str, name: str) -> int:
        """The counter's value (0 when it was never moved)."""
        ...

    def get_step(self, run_id: str, step: int) -> StepRecord | None: ...

    def put_step(self, record: StepRecord) -> None:
        """Insert or replace the step's row."""
        ...

    def unfinished_steps(self, run_id: str, through: int) -> list[StepRecord]:
        """Unfinished steps <= ``through``, ascending."""
        ...

    def finished_steps(self, run_id: str) -> list[StepRecord]:
        """Finished steps, ascending (the run's history)."""
        ...

    def last_finished_before(self, run_id: str, step: int) -> StepRecord | None:
        """The highest finished step strictly below ``step``."""
        ...

    def get_samples(self, run_id: str, step: int, sample_ids: Sequence[str]) -> dict[str, str]:
        """Stored result JSON of the given sample ids that were counted for (run, step)."""
        ...

    def put_samples(self, run_id: str, step: int, results: Sequence[tuple[str, str]]) -> None: ...

    def sample_steps(self, run_id: str, sample_ids: Sequence[str]) -> dict[str, int]:
        """The step each of the given sample ids was counted in (any step of the run)."""
        ...

    def get_fingerprint(self, run_id: str, fingerprint: str) -> FingerprintRecord | None: ...

    def put_fingerprint(
        self, run_id: str, fingerprint: str, record: FingerprintRecord, prune_before: float
    ) -> None:
        """Insert or replace the fingerprint; forget the run's ones seen before
        ``prune_before`` (they can no longer match)."""
        ...

    def get_prompt_groups(
        self, run_id: str, prompt_ids: Sequence[str]
    ) -> dict[str, tuple[int, int]]:
        """(step, samples counted in it) of each given prompt that has a group."""
        ...

    def put_prompt_groups(self, run_id: str, groups: dict[str, tuple[int, int]]) -> None:
        """Insert or replace the (step, samples) of each prompt's group."""
        ...

    def get_references(self, run_id: str, prompt_ids: Sequence[str]) -> dict[str, Counts]: ...

    def put_references(self, run_id: str, step: int, references: dict[str, Counts]) -> None:
        """Pin references; prompts already pinned keep their first values."""
        ...


class Store(Protocol):
    def write(self) -> AbstractContextManager[Transaction]:
        """A write transaction (see the module docstring)."""
        ...

    def read(self) -> AbstractContextManager[Transaction]:
        """A read-only transaction over one consistent snapshot where the backend has one."""
        ...

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers a trivial query now."""
        ...

    def close(self) -> None: ...


def iter_chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    """Split IN-lists so no statement exceeds SQLite's bound-parameter limit."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
