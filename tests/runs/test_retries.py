"""Retried requests never move the run's sample counter, on SQLite and PostgreSQL.

- Requests with sample ids (the SDK, verl without a step): a resent request goes back to the
  step its samples were counted in, answered from the stored results.
- Requests without ids (OpenRLHF): the same fingerprint within the window is answered from the
  stored answer and counted as a suspected retry; outside the window it counts again.
- The new table and index are created in a store made by the previous schema.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

from sigreward.domain.results import Counts
from sigreward.domain.retries import RetryCheck
from sigreward.domain.run_config import RunConfigPatch
from sigreward.domain.runs import RunService
from sigreward.domain.samples import SampleInput
from sigreward.store import SqliteStore, Store


def _sample(index: int, sample_id: str | None = None) -> SampleInput:
    return SampleInput(
        index=index,
        id=sample_id,
        prompt_id="p",
        correct=True,
        score=1.0,
        counts=Counts(3.0, 1.0),
        reference=Counts(2.0, 2.0),
    )


class Clock:
    """The time requests are stored at, set by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _service(store: Store, samples_per_step: int = 2, clock: Clock | None = None) -> RunService:
    runs = RunService(store, model_loaded=False, clock=clock or Clock())
    runs.configure("r", RunConfigPatch(significance="values", samples_per_step=samples_per_step))
    return runs


def test_a_resent_request_with_ids_keeps_its_step(store: Store) -> None:
    runs = _service(store)
    first = runs.score_counted("r", [_sample(0, "a"), _sample(1, "b")])
    assert first.step == 0
    later = runs.score_counted("r", [_sample(0, "c")])
    assert later.step == 1
    again = runs.score_counted("r", [_sample(0, "a"), _sample(1, "b")])  # answer was lost
    assert again.step == 0 and all(s.duplicate for s in again.samples)
    assert [s.reward for s in again.samples] == [s.reward for s in first.samples]
    assert runs.score_counted("r", [_sample(0, "d")]).step == 1  # the count did not move
    view = runs.finish_step("r", 1)
    assert [(h.step, h.samples) for h in view.schedule.history] == [(0, 2), (1, 2)]
    assert view.counted_samples == 4 and view.suspected_retries == 0


def test_fingerprints_answer_recent_identical_requests(store: Store) -> None:
    clock = Clock()
    runs = _service(store, clock=clock)
    check = RetryCheck("fp-1", window_s=10.0, now=1000.0, min_gap_s=0.5)
    clock.now = 1000.05  # stored 50 ms after it arrived
    first = runs.score_counted("r", [_sample(0)], check)
    assert not first.suspected_retry
    # An identical response that arrived before the first was stored is no resent copy.
    twin = runs.score_counted("r", [_sample(0)], dataclasses.replace(check, now=1000.01))
    assert not twin.suspected_retry and twin.step == 0
    clock.now = 1000.1
    replay = runs.score_counted("r", [_sample(0)], dataclasses.replace(check, now=1001.2))
    assert replay.suspected_retry and replay.step == first.step == 0
    assert [s.reward for s in replay.samples] == [s.reward for s in first.samples]
    assert all(s.duplicate for s in replay.samples)
    # The same body long after the window: counted again.
    clock.now = 1020.1
    late = runs.score_counted("r", [_sample(0)], dataclasses.replace(check, now=1020.0))
    assert not late.suspected_retry and late.step == 1
    # Explicit steps use the same rule; window 0 turns it off.
    explicit = RetryCheck("fp-3", 10.0, 1030.0)
    clock.now = 1029.0
    runs.score("r", 5, [_sample(0)], explicit)
    assert runs.score("r", 5, [_sample(0)], explicit).suspected_retry
    off = RetryCheck("fp-4", 0.0, 1030.0)
    runs.score("r", 5, [_sample(0)], off)
    assert not runs.score("r", 5, [_sample(0)], off).suspected_retry
    view = runs.get_run("r")
    assert view.suspected_retries == 2 and view.counted_samples == 3
    assert view.suspected_retries == 2
    runs.delete_run("r")  # fingerprints go with the run
    _service(store)
    assert not runs.score_counted("r", [_sample(0)], check).suspected_retry


def test_old_sqlite_store_gets_the_new_table(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as connection:
        # The runs/samples/counters tables as the first release created them.
        connection.execute(
            "CREATE TABLE runs (run_id TEXT PRIMARY KEY, config TEXT NOT NULL, "
            "schedule TEXT NOT NULL, max_step BIGINT, finished_through BIGINT)"
        )
        connection.execute(
            "CREATE TABLE samples (run_id TEXT NOT NULL, step BIGINT NOT NULL, "
            "sample_id TEXT NOT NULL, result TEXT NOT NULL, PRIMARY KEY (run_id, step, sample_id))"
        )
    store = SqliteStore(path)
    try:
        clock = Clock()
        runs = _service(store, clock=clock)
        check = RetryCheck("fp", 10.0, 1.0)
        runs.score_counted("r", [_sample(0, "x")], check)
        assert runs.score_counted("r", [_sample(0, "x")], check).suspected_retry
    finally:
        store.close()
    with sqlite3.connect(path) as connection:
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {
        "request_fingerprints",
        "prompt_groups",
        "samples_by_id",
        "request_fingerprints_age",
    } <= names


def _prompt_sample(prompt_id: str, correct: bool = True) -> SampleInput:
    return dataclasses.replace(_sample(0), prompt_id=prompt_id, correct=correct)


def test_known_group_size_keeps_boundaries_exact(store: Store) -> None:
    """samples_per_prompt = 2, samples_per_step = 4 (prompts a, b per step): a resent copy
    never moves the counter, whenever it arrives, and identical responses are counted."""
    runs = RunService(store, model_loaded=False, clock=Clock())
    runs.configure(
        "r", RunConfigPatch(significance="values", samples_per_step=4, samples_per_prompt=2)
    )
    far = RetryCheck("unused", window_s=0.0, now=0.0)  # no time rule at all
    steps = [runs.score_counted("r", [_prompt_sample("a")], far).step for _ in range(2)]
    # a's group is full: a third "a" is a resent copy (its answer was lost).
    resent = runs.score_counted("r", [_prompt_sample("a")], far)
    assert resent.suspected_retry and resent.step == 0
    # A copy resent before its group is complete is counted and the group's last real
    # sample takes its place: still 2 samples of b.
    steps += [runs.score_counted("r", [_prompt_sample("b")], far).step for _ in range(2)]
    late_twin = runs.score_counted("r", [_prompt_sample("b")], far)
    assert late_twin.suspected_retry
    # Step 1: new prompts; then prompt a again two steps later is a new epoch, not a copy.
    steps += [runs.score_counted("r", [_prompt_sample(p)], far).step for p in "ccdd"]
    steps += [runs.score_counted("r", [_prompt_sample(p)], far).step for p in "eeaa"]
    assert steps == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    view = runs.finish_step("r", 2)
    assert [(h.step, h.samples) for h in view.schedule.history] == [(0, 4), (1, 4), (2, 4)]
    assert view.suspected_retries == 2 and view.counted_samples == 12


def test_known_group_size_replays_the_identical_answer(store: Store) -> None:
    clock = Clock()
    runs = RunService(store, model_loaded=False, clock=clock)
    runs.configure(
        "r", RunConfigPatch(significance="values", samples_per_step=2, samples_per_prompt=2)
    )
    first = runs.score_counted("r", [_prompt_sample("a")], RetryCheck("fp-a1", 10.0, 0.0))
    runs.score_counted("r", [_prompt_sample("a", correct=False)], RetryCheck("fp-a2", 10.0, 0.0))
    again = runs.score_counted("r", [_prompt_sample("a")], RetryCheck("fp-a1", 10.0, 500.0))
    assert again.suspected_retry and all(s.duplicate for s in again.samples)
    assert [s.reward for s in again.samples] == [s.reward for s in first.samples]
    assert runs.score_counted("r", [_prompt_sample("b")], RetryCheck("fp-b", 10.0, 0.0)).step == 1


def test_old_postgres_schema_gets_the_new_tables(pg_schema_url: str) -> None:
    import psycopg

    from sigreward.store import PostgresStore

    with psycopg.connect(pg_schema_url, autocommit=True) as connection:
        # The tables as the first release created them (runs and samples suffice here).
        connection.execute(
            "CREATE TABLE runs (run_id TEXT PRIMARY KEY, config TEXT NOT NULL, "
            "schedule TEXT NOT NULL, max_step BIGINT, finished_through BIGINT)"
        )
        connection.execute(
            "CREATE TABLE samples (run_id TEXT NOT NULL, step BIGINT NOT NULL, "
            "sample_id TEXT NOT NULL, result TEXT NOT NULL, PRIMARY KEY (run_id, step, sample_id))"
        )
    store = PostgresStore(pg_schema_url)
    try:
        runs = _service(store)
        check = RetryCheck("fp", 10.0, 1.0)
        runs.score_counted("r", [_sample(0, "x")], check)
        assert runs.score_counted("r", [_sample(0, "x")], check).suspected_retry
    finally:
        store.close()
    with psycopg.connect(pg_schema_url, autocommit=True) as connection:
        tables = {
            row[0]
            for row in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        }
        indexes = {
            row[0]
            for row in connection.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            )
        }
    assert {"request_fingerprints", "prompt_groups"} <= tables
    assert {"samples_by_id", "request_fingerprints_age"} <= indexes
