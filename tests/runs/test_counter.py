"""The per-run sample counter behind OpenRLHF's step-less requests, on SQLite and PostgreSQL.

``Transaction.add_to_counter`` is exact under the run's lock; ``RunService.score_counted``
moves it inside the score transaction, so concurrent requests at a step boundary land exactly:
N concurrent single-sample requests with samples_per_step = k give k samples in each step.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import pytest

from sigreward.domain.errors import RunNotFound, SampleError
from sigreward.domain.results import Counts
from sigreward.domain.run_config import RunConfigPatch
from sigreward.domain.runs import RunService
from sigreward.domain.samples import SampleInput
from sigreward.store import Store
from tests.runs.conftest import StoreFactory


def _sample(index: int = 0, correct: bool = True) -> SampleInput:
    return SampleInput(
        index=index,
        id=None,
        prompt_id="p",
        correct=correct,
        score=1.0 if correct else 0.0,
        counts=Counts(3.0, 1.0),
        reference=Counts(2.0, 2.0),
        num_tokens=None,
        target_tokens=None,
    )


def _service(store: Store, samples_per_step: int | None, run_id: str = "r") -> RunService:
    runs = RunService(store, model_loaded=False)
    runs.configure(run_id, RunConfigPatch(significance="values", samples_per_step=samples_per_step))
    return runs


def test_add_to_counter_returns_the_previous_value_and_delete_removes_it(store: Store) -> None:
    runs = _service(store, 4)
    runs.configure("other", RunConfigPatch(significance="values"))
    with store.write() as tx:
        assert tx.lock_run("r") is not None
        assert tx.add_to_counter("r", "samples", 3) == 0
        assert tx.add_to_counter("r", "samples", 2) == 3
        assert tx.add_to_counter("r", "other-name", 1) == 0
        assert tx.add_to_counter("other", "samples", 5) == 0
    with store.write() as tx:
        assert tx.add_to_counter("r", "samples", 0) == 5
    # A rolled-back transaction leaves the counter alone.
    with pytest.raises(RuntimeError), store.write() as tx:
        tx.add_to_counter("r", "samples", 100)
        raise RuntimeError("roll back")
    assert runs.get_run("r").counted_samples == 5
    runs.delete_run("r")
    runs.configure("r", RunConfigPatch(significance="values", samples_per_step=4))
    assert runs.get_run("r").counted_samples == 0  # the counter went with the run
    assert runs.get_run("other").counted_samples == 5  # other runs keep theirs


@pytest.mark.parametrize("workers", [8])
def test_concurrent_single_sample_requests_fill_each_step_exactly(
    store_factory: StoreFactory, workers: int
) -> None:
    k, n = 4, 40
    first = _service(store_factory(), k)
    # Several store objects on one database: threads here, replicas in production.
    services = [first] + [RunService(store_factory(), model_loaded=False) for _ in range(2)]

    def one(i: int) -> int:
        result = services[i % len(services)].score_counted("r", [_sample(correct=i % 3 != 0)])
        assert not result.late
        return result.step

    with ThreadPoolExecutor(max_workers=workers) as pool:
        steps = list(pool.map(one, range(n)))
    assert sorted(steps) == [i // k for i in range(n)]
    # Finish the last step too; every step holds exactly k samples.
    view = first.finish_step("r", max(steps))
    assert [(h.step, h.samples) for h in view.schedule.history] == [(s, k) for s in range(n // k)]


def test_a_request_straddling_a_boundary_goes_to_its_first_samples_step(store: Store) -> None:
    runs = _service(store, 4)
    sizes = [3, 3, 3, 2, 1]  # first indices 0, 3, 6, 9, 11
    steps = [runs.score_counted("r", [_sample(i) for i in range(m)]).step for m in sizes]
    assert steps == [0, 0, 1, 2, 2]
    view = runs.finish_step("r", 2)
    assert [(h.step, h.samples) for h in view.schedule.history] == [(0, 6), (1, 3), (2, 3)]


def test_rejected_requests_reserve_nothing_and_explicit_steps_are_respected(
    store: Store,
) -> None:
    runs = _service(store, 2)
    # Values mode needs significance counts: rejected inside the transaction.
    bad = dataclasses.replace(_sample(), counts=None)
    with pytest.raises(SampleError):
        runs.score_counted("r", [bad])
    assert runs.score_counted("r", [_sample()]).step == 0  # index 0: nothing was reserved
    # An explicit step ahead of the counter: derived steps never fall behind it (not late).
    runs.score("r", 5, [_sample()])
    result = runs.score_counted("r", [_sample()])
    assert (result.step, result.late) == (5, False)
    runs.finish_step("r", 7)
    result = runs.score_counted("r", [_sample()])
    assert (result.step, result.late) == (8, False)
    # A run without samples_per_step cannot derive steps.
    plain = _service(store, None, run_id="plain")
    with pytest.raises(SampleError, match="samples_per_step"):
        plain.score_counted("plain", [_sample()])
    with pytest.raises(RunNotFound):
        runs.score_counted("none-such", [_sample()])


def test_a_run_that_counted_samples_before_the_counter_continues_after_them(
    store: Store,
) -> None:
    runs = _service(store, 2)
    runs.score("r", 0, [_sample(), _sample()])
    runs.score("r", 1, [_sample(), _sample(), _sample()])
    # 5 samples were counted with explicit steps: the counter starts after them.
    assert runs.score_counted("r", [_sample()]).step == 2  # index 5 // 2
    assert runs.get_run("r").counted_samples == 6
