"""RunService on both stores: finishing, late requests, references, dedupe, baselines, PUT."""

from __future__ import annotations

import math
from typing import Any

import pytest

from sigreward.domain.errors import RequestError, RunConflict, RunNotFound, SampleError, TooLarge
from sigreward.domain.results import Counts
from sigreward.domain.run_config import RunConfig, RunConfigPatch
from sigreward.domain.runs import RunService
from sigreward.domain.samples import GivenReference, SampleInput, SampleLimits, SampleRequest
from sigreward.domain.schedule import apply_finished_step, base_k, initial_state
from sigreward.reward.baselines import BaselineSample, baseline_rewards
from sigreward.reward.significance import SignificanceRewardParams, significance_length_reward
from sigreward.store import Store

UNIT = math.pi / 2  # lambda_w_e giving a starting k of exactly 1


def sample(
    index: int = 0,
    *,
    id: str | None = None,
    prompt: str | None = "p",
    correct: bool = True,
    score: float | None = None,
    counts: tuple[float, float] | None = (4, 6),
    reference: tuple[float, float] | None = None,
    num_tokens: int | None = None,
    target_tokens: int | None = None,
) -> SampleInput:
    return SampleInput(
        index=index,
        id=id,
        prompt_id=prompt,
        correct=correct,
        score=(1.0 if correct else 0.0) if score is None else score,
        counts=None if counts is None else Counts(*counts),
        reference=None if reference is None else Counts(*reference),
        num_tokens=num_tokens,
        target_tokens=target_tokens,
    )


def given(index: int, correct: bool, **kw: object) -> SampleInput:
    return sample(index, correct=correct, reference=(8, 12), **kw)  # type: ignore[arg-type]


@pytest.fixture
def runs(store: Store) -> RunService:
    return RunService(store, model_loaded=False)


def fast_schedule(runs: RunService, run_id: str = "r") -> RunConfig:
    """A run whose k moves from step 1 on, with k starting at 1."""
    config, created = runs.configure(
        run_id,
        RunConfigPatch(lambda_w_e=UNIT, slope_start_step=0, slope_period=3, slope_threshold=0.1),
    )
    assert created
    return config


def test_submit_creates_run_with_defaults_and_scores_given_reference(runs: RunService) -> None:
    result = runs.score("new", 0, [given(0, True), given(1, False)])
    config = runs.get_config("new")
    assert config == RunConfig.resolve(RunConfigPatch(), model_loaded=False)
    assert config.significance == "values" and config.reference == "given"
    params = SignificanceRewardParams()
    for res, correct in zip(result.samples, (True, False), strict=True):
        lr, _ = significance_length_reward(
            correct, Counts(4, 6), Counts(8, 12), base_k(config), params
        )
        assert res.length_reward == pytest.approx(lr)
        assert res.reward == pytest.approx((1.0 if correct else 0.0) + lr)
        assert (res.reference_significant, res.reference_insignificant) == (8, 12)
        assert (res.significant, res.insignificant) == (4, 6)
    assert result.schedule is not None
    assert result.schedule.k == pytest.approx(base_k(config))
    assert not result.late and not result.schedule.dynamic
    assert runs.list_runs() == ["new"]


def test_rejected_submit_changes_nothing(runs: RunService) -> None:
    with pytest.raises(SampleError) as info:
        runs.score("r", 0, [given(0, True), sample(1)])  # second lacks its given reference
    assert info.value.param == "samples[1].reference"
    assert "samples[1].reference" in str(info.value)
    with pytest.raises(RunNotFound):
        runs.get_run("r")
    assert runs.list_runs() == []


def test_implicit_finishing_in_order_and_steps_without_samples(runs: RunService) -> None:
    fast_schedule(runs)
    runs.score("r", 0, [given(0, True), given(1, False)])  # score .5
    runs.score("r", 0, [given(0, True)])  # same step, second request: score 2/3
    runs.score("r", 1, [given(0, True)])  # finishes step 0
    view = runs.get_run("r")
    assert [h.step for h in view.schedule.history] == [0]
    assert view.schedule.history[0].score == pytest.approx(2 / 3)
    assert view.schedule.history[0].samples == 3
    assert view.schedule.last_finished_step == 0
    runs.score("r", 4, [given(0, False)])  # finishes 1; steps 2 and 3 never had samples
    view = runs.get_run("r")
    assert [h.step for h in view.schedule.history] == [0, 1]
    config = runs.get_config("r")
    state = apply_finished_step(initial_state(config), config, 0, 2 / 3)
    state = apply_finished_step(state, config, 1, 1.0)
    assert view.schedule.k == pytest.approx(state.k)
    assert view.schedule.history[1].k_after == pytest.approx(state.k)
    assert view.schedule.history[1].k_before == view.schedule.history[0].k_after
    assert view.schedule.dynamic == state.dynamic


def test_history_aggregates(runs: RunService) -> None:
    runs.configure("r", RunConfigPatch(reference="given"))
    result = runs.score(
        "r",
        0,
        [
            given(0, True, counts=(2, 4)),
            given(1, False, counts=(6, 10)),
            sample(2, correct=False, counts=(3, 3), reference=(5, 0)),  # degenerate reference
        ],
    )
    runs.finish_step("r", 0)
    entry = runs.get_run("r").schedule.history[0]
    assert entry.samples == 3 and entry.score == pytest.approx(1 / 3)
    assert entry.mean_significant == pytest.approx(11 / 3)
    assert entry.mean_insignificant == pytest.approx(17 / 3)
    lrs = [r.length_reward for r in result.samples]
    assert entry.mean_length_reward_correct == pytest.approx(lrs[0])
    assert entry.mean_length_reward_wrong == pytest.approx((lrs[1] + lrs[2]) / 2)
    assert entry.degenerate_references == 1
    assert result.samples[2].degenerate_reference
    assert result.samples[2].length_reward == pytest.approx(-5.0)  # -lambda_w_e


def test_explicit_finish_makes_later_requests_late(runs: RunService) -> None:
    fast_schedule(runs)
    runs.score("r", 0, [given(0, True)])
    runs.score("r", 1, [given(0, False)])
    view = runs.finish_step("r", 3)
    assert [h.step for h in view.schedule.history] == [0, 1]
    assert view.schedule.finished_through == 3
    k_after_1 = view.schedule.k
    for step in (1, 2, 3):
        late = runs.score("r", step, [given(0, False)])
        assert late.late
    # Step 3 is late: it uses the state after step 1 (the last finished step below it).
    late3 = runs.score("r", 3, [given(0, True)])
    assert late3.schedule.k == pytest.approx(k_after_1)
    assert runs.get_run("r") == view
    fresh = runs.score("r", 4, [given(0, True)])
    assert not fresh.late
    with pytest.raises(RunNotFound):
        runs.finish_step("missing", 1)


def test_late_request_uses_its_steps_schedule_and_changes_nothing(runs: RunService) -> None:
    fast_schedule(runs)
    scores = {0: [True, False], 1: [True, True], 2: [False, False], 3: [True, False]}
    answers = {}
    for step, outcomes in scores.items():
        result = runs.score("r", step, [given(i, c) for i, c in enumerate(outcomes)])
        answers[step] = result.schedule
    runs.score("r", 6, [given(0, True)])  # finishes 3; steps 4, 5 unseen
    before = runs.get_run("r")
    ks = {h.step: h.k_before for h in before.schedule.history}
    assert len(set(ks.values())) > 1, "the schedule must have moved for this test to bite"
    for step in (0, 1, 2, 3):
        late = runs.score("r", step, [given(0, False), given(1, True)])
        assert late.late
        assert late.schedule.k == pytest.approx(ks[step])
        assert late.schedule == answers[step]
        lr, _ = significance_length_reward(
            False, Counts(4, 6), Counts(8, 12), ks[step], SignificanceRewardParams(5, 2, UNIT)
        )
        assert late.samples[0].length_reward == pytest.approx(lr)
    # Steps 4 and 5 never had samples: their state is the one after step 3.
    k_after_3 = before.schedule.history[-1].k_after
    late5 = runs.score("r", 5, [given(0, True)])
    assert late5.schedule.k == pytest.approx(k_after_3)
    assert runs.get_run("r") == before


def test_dedupe_by_sample_id(runs: RunService) -> None:
    fast_schedule(runs)
    first = runs.score("r", 0, [given(0, True, id="a"), given(1, False, id="b"), given(2, False)])
    # A retry with different payloads for the same ids: answered with the stored results.
    retry = runs.score(
        "r",
        0,
        [given(0, True, id="a", counts=(1, 1)), given(1, True, id="b"), given(2, False)],
    )
    assert [r.duplicate for r in retry.samples] == [True, True, False]
    for old, new in zip(first.samples[:2], retry.samples[:2], strict=True):
        assert (old.reward, old.length_reward, old.correct) == (
            new.reward,
            new.length_reward,
            new.correct,
        )
    # Repeated ids within one request count once.
    same = runs.score("r", 0, [given(0, True, id="c"), given(1, True, id="c")])
    assert [r.duplicate for r in same.samples] == [False, True]
    assert same.samples[0].reward == same.samples[1].reward
    runs.finish_step("r", 0)
    entry = runs.get_run("r").schedule.history[0]
    # a, b, the id-less sample twice, and c once.
    assert entry.samples == 5
    assert entry.score == pytest.approx(2 / 5)
    # The same ids at another step are new samples.
    other = runs.score("r", 1, [given(0, True, id="a")])
    assert not other.samples[0].duplicate
    # A retry after its step finished is late and still answered with the stored result.
    late = runs.score("r", 0, [given(0, False, id="a")])
    assert late.late
    assert late.samples[0].duplicate and late.samples[0].reward == first.samples[0].reward


def test_first_seen_references_pin_per_prompt(runs: RunService) -> None:
    runs.configure("r", RunConfigPatch(reference="first_seen"))
    first = runs.score(
        "r",
        0,
        [
            sample(0, prompt="p", counts=(1, 2)),
            sample(1, prompt="p", counts=(2, 3)),
            sample(2, prompt="q", counts=(5, 5)),
        ],
    )
    assert [(r.reference_significant, r.reference_insignificant) for r in first.samples] == [
        (1.5, 2.5),
        (1.5, 2.5),
        (5, 5),
    ]
    second = runs.score(
        "r",
        1,
        [sample(0, prompt="p", counts=(10, 10)), sample(1, prompt="z", counts=(3, 7))],
    )
    assert (second.samples[0].reference_significant, second.samples[0].reference_insignificant) == (
        1.5,
        2.5,
    )
    assert (second.samples[1].reference_significant, second.samples[1].reference_insignificant) == (
        3,
        7,
    )
    expected, _ = significance_length_reward(
        True,
        Counts(10, 10),
        Counts(1.5, 2.5),
        base_k(runs.get_config("r")),
        SignificanceRewardParams(),
    )
    assert second.samples[0].length_reward == pytest.approx(expected)
    with pytest.raises(SampleError, match=r"samples\[0\]\.prompt_id"):
        runs.score("r", 2, [sample(0, prompt=None)])


def test_group_references_use_this_requests_means(runs: RunService) -> None:
    runs.configure("r", RunConfigPatch(reference="group"))
    a = runs.score(
        "r", 0, [sample(0, prompt="p", counts=(2, 2)), sample(1, prompt="p", counts=(4, 8))]
    )
    assert [(r.reference_significant, r.reference_insignificant) for r in a.samples] == [
        (3, 5),
        (3, 5),
    ]
    b = runs.score("r", 0, [sample(0, prompt="p", counts=(1, 1))])
    assert (b.samples[0].reference_significant, b.samples[0].reference_insignificant) == (1, 1)


def test_significance_counts_are_required(runs: RunService) -> None:
    with pytest.raises(SampleError) as info:
        runs.score("r", 0, [given(0, True, counts=None)])
    assert info.value.param == "samples[0].significance"  # values mode: the client must send values
    classifier = RunService(runs.store, model_loaded=True)
    with pytest.raises(SampleError) as info:
        classifier.score("c", 0, [given(0, True, counts=None)])
    assert info.value.param == "samples[0].response"


@pytest.mark.parametrize(
    ("reward", "params"),
    [
        ("kimi", {}),
        ("arora_zanette", {"alpha": 0.2}),
        ("l1_exact", {}),
        ("cosine", {"max_tokens": 1000}),
        ("truncation", {"max_tokens": 300}),
    ],
)
def test_baselines_through_submit(runs: RunService, reward: str, params: dict) -> None:
    runs.configure("b", RunConfigPatch(reward=reward, reward_params=params))  # type: ignore[arg-type]
    lengths = [(100, True, "p"), (400, False, "p"), (250, True, "p"), (900, True, "q")]
    samples = [
        sample(i, prompt=p, correct=c, counts=None, num_tokens=n, target_tokens=300)
        for i, (n, c, p) in enumerate(lengths)
    ]
    result = runs.score("b", 0, samples)
    config = runs.get_config("b")
    expected = baseline_rewards(
        reward,
        [
            BaselineSample(1.0 if c else 0.0, c, n, prompt_id=p, target_tokens=300)
            for n, c, p in lengths
        ],
        config.reward_params,
    )
    assert [r.reward for r in result.samples] == pytest.approx(expected)
    for res, s in zip(result.samples, samples, strict=True):
        assert res.length_reward == pytest.approx(res.reward - s.score)
    runs.score("b", 1, samples[:1])
    assert runs.get_run("b").schedule.history[0].score == pytest.approx(0.75)


def test_empty_samples_rejected(runs: RunService) -> None:
    with pytest.raises(SampleError) as info:
        runs.score("r", 0, [])
    assert info.value.param == "samples"
    with pytest.raises(ValueError, match="step"):
        runs.score("r", -1, [given(0, True)])
    assert runs.list_runs() == []


def test_baseline_validation(runs: RunService) -> None:
    runs.configure("k", RunConfigPatch(reward="kimi"))
    with pytest.raises(SampleError, match=r"samples\[0\]\.num_tokens"):
        runs.score("k", 0, [sample(0, counts=None)])
    with pytest.raises(SampleError, match=r"samples\[1\]\.prompt_id"):
        runs.score("k", 0, [sample(0, num_tokens=5), sample(1, prompt=None, num_tokens=5)])
    runs.configure("l1", RunConfigPatch(reward="l1_max"))
    with pytest.raises(SampleError, match=r"samples\[0\]\.target_tokens"):
        runs.score("l1", 0, [sample(0, num_tokens=5)])
    assert runs.get_run("k").schedule.history == [] and runs.get_run("k").schedule.max_step is None


def test_check_samples_before_scoring_changes_nothing(runs: RunService) -> None:
    limits = SampleLimits(max_samples=2, max_chars=10)

    def sent(index: int, **kw: Any) -> SampleRequest:
        return SampleRequest(index, correct=True, significance=(1.0, 2.0), **kw)

    with_reference = sent(0, reference=GivenReference(counts=Counts(1, 1)))
    with pytest.raises(SampleError, match=r"samples\[1\]\.reference"):
        runs.check_samples("unknown", [with_reference, sent(1)], limits)
    with pytest.raises(TooLarge, match=r"samples: 3 samples exceed the limit of 2"):
        runs.check_samples("unknown", [with_reference] * 3, limits)
    with pytest.raises(RequestError, match=r"^step: give the step"):
        runs.check_samples("unknown", [with_reference], limits, True)
    assert runs.list_runs() == []  # checking created nothing
    runs.configure("g", RunConfigPatch(reference="group"))
    assert runs.check_samples("g", [sent(0, prompt_id="p")], limits).reference == "group"


def test_put_conflict_semantics(runs: RunService) -> None:
    config, created = runs.configure("r", RunConfigPatch(slope_period=5))
    assert created and config.slope_period == 5
    assert runs.configure("r", RunConfigPatch()) == (config, False)
    assert runs.configure("r", RunConfigPatch(slope_period=5, lambda_c=5.0)) == (config, False)
    with pytest.raises(RunConflict) as info:
        runs.configure("r", RunConfigPatch(slope_period=6, lambda_c=1.0, lambda_w_n=2.0))
    assert sorted(info.value.fields) == ["lambda_c", "slope_period"]
    # A run created by a rewards request has the defaults; PUT compares only given fields.
    runs.score("auto", 0, [given(0, True)])
    assert runs.configure("auto", RunConfigPatch(reference="given"))[1] is False
    with pytest.raises(RunConflict) as info:
        runs.configure("auto", RunConfigPatch(reference="group"))
    assert info.value.fields == ["reference"]
    # A baseline with a required parameter: a later PUT need not repeat it.
    runs.configure("t", RunConfigPatch(reward="truncation", reward_params={"max_tokens": 10}))
    assert runs.configure("t", RunConfigPatch(reward="truncation"))[1] is False
    with pytest.raises(ValueError, match="max_tokens"):
        runs.configure("t2", RunConfigPatch(reward="truncation"))


def test_delete_removes_everything(runs: RunService) -> None:
    runs.configure("r", RunConfigPatch(reference="first_seen", slope_period=4))
    runs.score("r", 0, [sample(0, id="a", counts=(1, 1))])
    runs.score("r", 1, [sample(0, id="a", counts=(1, 1))])
    runs.delete_run("r")
    with pytest.raises(RunNotFound):
        runs.get_run("r")
    with pytest.raises(RunNotFound):
        runs.delete_run("r")
    assert runs.list_runs() == []
    # Recreated with defaults: no pinned reference, no stored sample, no history.
    runs.configure("r", RunConfigPatch(reference="first_seen"))
    again = runs.score("r", 0, [sample(0, id="a", counts=(7, 9))])
    assert not again.samples[0].duplicate
    assert (again.samples[0].reference_significant, again.samples[0].reference_insignificant) == (
        7,
        9,
    )
    view = runs.get_run("r")
    assert view.schedule.history == [] and view.config.slope_period == 10


def test_get_config_and_the_defaults(runs: RunService) -> None:
    with pytest.raises(RunNotFound):
        runs.get_config("x")
    assert runs.effective_config("x") == runs.default_config()
    assert runs.list_runs() == []
    runs.configure("x", RunConfigPatch())
    assert runs.get_config("x") == runs.default_config()
    assert runs.list_runs() == ["x"]


def test_k_warning_hook_and_flag(store: Store) -> None:
    seen: list[tuple[str, int, float]] = []
    runs = RunService(store, model_loaded=False, on_k_warning=lambda *a: seen.append(a))
    runs.configure(
        "r",
        RunConfigPatch(lambda_w_e=UNIT, slope_start_step=2, slope_period=2, slope_threshold=2.5),
    )
    # Per-step scores 0, .5, .6, .9, 1.5 (as in the hand-worked schedule test): k = 6 at step 4.
    for step, score in enumerate([0.0, 0.5, 0.6, 0.9, 1.5]):
        runs.score("r", step, [given(0, score > 0, score=score)])
    runs.finish_step("r", 4)
    view = runs.get_run("r")
    assert view.schedule.k == pytest.approx(6.0) and view.schedule.k_warning
    assert seen == [("r", 4, pytest.approx(6.0))]
    assert view.schedule.k_warning is True
