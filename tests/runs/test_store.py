"""Persistence and concurrency of the stores, and a 200-step run end to end through submit."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from sigreward.domain.results import Counts
from sigreward.domain.run_config import RunConfig, RunConfigPatch
from sigreward.domain.runs import RunService
from sigreward.domain.samples import SampleInput
from sigreward.domain.schedule import apply_finished_step, base_k, initial_state
from sigreward.settings import Settings
from sigreward.store import SQLITE_FILENAME, SqliteStore, make_store
from tests.runs.conftest import StoreFactory
from tests.runs.test_schedule import noisy_rising_then_flat, reference_schedule


def outcome(index: int, correct: bool, id: str | None = None) -> SampleInput:
    return SampleInput(
        index=index,
        id=id,
        prompt_id=f"p{index % 4}",
        correct=correct,
        score=1.0 if correct else 0.0,
        counts=Counts(3 + index % 5, 2 + index % 7),
        reference=Counts(6, 9),
    )


def test_state_survives_reopening(store_factory: StoreFactory) -> None:
    first = RunService(store_factory(), model_loaded=False)
    first.configure("r", RunConfigPatch(reference="first_seen", slope_start_step=1))
    for step in range(4):
        first.score("r", step, [outcome(i, i % 2 == 0, id=f"s{i}") for i in range(6)])
    before = first.get_run("r")
    stored = first.score("r", 3, [outcome(0, True, id="s0")]).samples[0]
    first.store.close()

    second = RunService(store_factory(), model_loaded=False)
    assert second.get_run("r") == before
    again = second.score("r", 3, [outcome(0, False, id="s0")]).samples[0]
    assert again.duplicate and again.reward == stored.reward
    pinned = second.score("r", 4, [outcome(0, True)]).samples[0]
    assert pinned.reference_significant == stored.reference_significant


def test_make_store_uses_data_dir(tmp_path: Path) -> None:
    store = make_store(Settings(data_dir=tmp_path / "data"))
    try:
        assert isinstance(store, SqliteStore)
        assert store.path == tmp_path / "data" / SQLITE_FILENAME
        RunService(store, model_loaded=False).configure("x", RunConfigPatch())
    finally:
        store.close()
    reopened = make_store(tmp_path / "data")
    try:
        assert RunService(reopened, model_loaded=False).list_runs() == ["x"]
    finally:
        reopened.close()


def test_sqlite_is_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3")
    try:
        with store.read() as tx:
            assert tx._exec("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert tx._exec("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        store.close()


def test_200_step_run_matches_reference_schedule(store_factory: StoreFactory) -> None:
    runs = RunService(store_factory(), model_loaded=False)
    runs.configure("long", RunConfigPatch())
    outcomes = noisy_rising_then_flat(seed=7, steps=200, group=8)
    ks = []
    for step, group in enumerate(outcomes):
        result = runs.score(
            "long", step, [outcome(i, bool(o), id=f"{step}-{i}") for i, o in enumerate(group)]
        )
        assert not result.late
        ks.append(result.schedule.k)
    runs.finish_step("long", 199)
    view = runs.get_run("long")
    scores = [(step, sum(g) / len(g)) for step, g in enumerate(outcomes)]
    expected = reference_schedule(RunConfig(), scores)
    history = view.schedule.history
    assert [h.step for h in history] == list(range(200))
    assert [h.score for h in history] == pytest.approx([s for _, s in scores])
    assert [h.k_after for h in history] == pytest.approx([k for k, _, _ in expected], abs=1e-9)
    # The k each step was answered with is the k after all earlier steps.
    start_k = base_k(RunConfig())
    assert ks == pytest.approx([start_k] + [k for k, _, _ in expected[:-1]], abs=1e-9)
    assert [h.k_before for h in history] == pytest.approx(ks)
    assert view.schedule.low_slope_count == expected[-1][1]
    assert all(k == start_k for k in ks[:51])
    assert min(ks[120:]) >= -2 * start_k and min(ks[120:]) < 0


def _submitter(
    runs: RunService,
    name: str,
    steps: list[int],
    barrier: threading.Barrier,
    answered: list[tuple[int, bool, int]],
    errors: list[BaseException],
) -> None:
    rng = random.Random(name)
    try:
        for step in steps:
            barrier.wait(timeout=60)
            samples = [outcome(i, rng.random() < 0.5, id=f"{name}-{i}") for i in range(3)]
            result = runs.score("c", step, samples)
            assert result.schedule is not None
            counted = sum(1 for s in samples if s.correct)
            answered.append((step, result.late, counted))
    except BaseException as error:  # reported by the main thread
        errors.append(error)
        barrier.abort()


def test_concurrent_submits_finish_each_step_once(store_factory: StoreFactory) -> None:
    """Two store objects (two replicas) race on steps t and t+1; each step finishes once."""
    a = RunService(store_factory(), model_loaded=False)
    b = RunService(store_factory(), model_loaded=False)
    a.configure("c", RunConfigPatch(slope_start_step=0, slope_period=3))
    rounds = 25
    barrier = threading.Barrier(2)
    answered: list[tuple[int, bool, int]] = []
    errors: list[BaseException] = []
    threads = [
        threading.Thread(
            target=_submitter, args=(a, "A", list(range(rounds)), barrier, answered, errors)
        ),
        threading.Thread(
            target=_submitter, args=(b, "B", list(range(1, rounds + 1)), barrier, answered, errors)
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    a.finish_step("c", rounds)
    view = a.get_run("c")
    history = view.schedule.history
    # Step 0 is missing when B's step 1 won the first race (A's step 0 then came late).
    counted_steps = sorted({step for step, late, _ in answered if not late})
    assert [h.step for h in history] == counted_steps
    assert counted_steps[-rounds:] == list(range(1, rounds + 1))
    # Every non-late request was counted exactly once in its step.
    for entry in history:
        requests = [r for r in answered if r[0] == entry.step and not r[1]]
        assert entry.samples == 3 * len(requests)
        assert entry.score * entry.samples == pytest.approx(sum(r[2] for r in requests))
    assert any(late for _, late, _ in answered), "the race never produced a late request"
    # Replaying the history through the pure schedule gives the stored chain of k.
    config = view.config
    state = initial_state(config)
    for entry in history:
        assert entry.k_before == pytest.approx(state.k)
        state = apply_finished_step(state, config, entry.step, entry.score)
        assert entry.k_after == pytest.approx(state.k)
    assert view.schedule.k == pytest.approx(state.k)
