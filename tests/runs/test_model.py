"""Random sequences of submits and finishes against a plain in-memory model of api.md's rules."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sigreward.domain.results import Counts
from sigreward.domain.run_config import RunConfig, RunConfigPatch
from sigreward.domain.runs import RunService
from sigreward.domain.samples import SampleInput
from sigreward.domain.schedule import base_k
from sigreward.reward.significance import SignificanceRewardParams, significance_length_reward
from sigreward.store import SqliteStore
from tests.runs.test_schedule import reference_schedule

PATCH = RunConfigPatch(
    lambda_w_e=math.pi / 2, slope_start_step=1, slope_period=3, slope_threshold=0.3
)
CONFIG = RunConfig.resolve(PATCH, model_loaded=False)
REFERENCE = Counts(5, 7)


@dataclass
class Model:
    """api.md "Precise rules", written the obvious way with full lists."""

    open_scores: dict[int, list[float]] = field(default_factory=dict)  # unfinished steps
    history: list[tuple[int, float]] = field(default_factory=list)
    max_step: int | None = None
    finished_through: int | None = None
    answered: dict[tuple[int, str], float] = field(default_factory=dict)

    def k_before(self, step: int) -> float:
        prefix = [(s, v) for s, v in self.history if s < step]
        return reference_schedule(CONFIG, prefix)[-1][0] if prefix else base_k(CONFIG)

    def finish_through(self, bound: int) -> None:
        for step in sorted(s for s in self.open_scores if s <= bound):
            scores = self.open_scores.pop(step)
            self.history.append((step, sum(scores) / len(scores)))

    def submit(self, step: int, samples: list[SampleInput]) -> tuple[float, bool, list[float]]:
        late = (self.max_step is not None and step < self.max_step) or (
            self.finished_through is not None and step <= self.finished_through
        )
        if not late:
            self.finish_through(step - 1)
        k = self.k_before(step)
        rewards = []
        for s in samples:
            assert s.counts is not None
            lr, _ = significance_length_reward(
                s.correct, s.counts, REFERENCE, k, SignificanceRewardParams(5.0, 2.0, math.pi / 2)
            )
            reward = s.score + lr
            if s.id is not None and (step, s.id) in self.answered:
                reward = self.answered[(step, s.id)]
            elif not late:
                self.open_scores.setdefault(step, []).append(s.score)
                if s.id is not None:
                    self.answered[(step, s.id)] = reward
            rewards.append(reward)
        if not late:
            self.max_step = step if self.max_step is None else max(self.max_step, step)
        return k, late, rewards

    def finish(self, step: int) -> None:
        self.finish_through(step)
        self.finished_through = (
            step if self.finished_through is None else max(self.finished_through, step)
        )


sample_strategy = st.tuples(
    st.sampled_from([None, "a", "b", "c"]),
    st.booleans(),
    st.integers(0, 9),
    st.integers(0, 9),
)
operation = st.one_of(
    st.tuples(
        st.just("submit"), st.integers(-3, 2), st.lists(sample_strategy, min_size=1, max_size=4)
    ),
    st.tuples(st.just("finish"), st.integers(-2, 1), st.just([])),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(operation, min_size=1, max_size=25))
def test_service_matches_model(operations: list[tuple[str, int, list]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "m.sqlite3")
        try:
            runs = RunService(store, model_loaded=False)
            runs.configure("m", PATCH)
            model = Model()
            for kind, offset, raw in operations:
                step = max(0, (model.max_step or 0) + offset)
                if kind == "finish":
                    model.finish(step)
                    runs.finish_step("m", step)
                    continue
                samples = [
                    SampleInput(
                        i, sid, "p", correct, 1.0 if correct else 0.0, Counts(s, n), REFERENCE
                    )
                    for i, (sid, correct, s, n) in enumerate(raw)
                ]
                k, late, rewards = model.submit(step, samples)
                result = runs.score("m", step, samples)
                assert result.schedule is not None
                assert math.isclose(result.schedule.k, k, rel_tol=1e-9, abs_tol=1e-9)
                assert result.late == late
                got = [r.reward for r in result.samples]
                assert all(
                    math.isclose(a, b, abs_tol=1e-9) for a, b in zip(got, rewards, strict=True)
                ), (step, raw, got, rewards)
            view = runs.get_run("m")
            assert [(h.step, round(h.score, 9)) for h in view.schedule.history] == [
                (s, round(v, 9)) for s, v in model.history
            ]
        finally:
            store.close()
