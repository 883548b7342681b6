"""The length rewards of recent papers through RunService, on SQLite and on PostgreSQL: typed
parameters survive the store, ThinkPrune scores a late request with its own step's limit, and
a PUT compares parameters by value."""

from __future__ import annotations

import pytest

from sigreward.domain.errors import RunConflict, SampleError
from sigreward.domain.run_config import RunConfigPatch
from sigreward.domain.runs import RunService
from sigreward.reward.params import RewardParamError
from sigreward.store import Store
from tests.runs.test_runs import sample


@pytest.fixture
def runs(store: Store) -> RunService:
    return RunService(store, model_loaded=False)


def tokens(*lengths: int, correct: bool = True) -> list:
    return [sample(i, correct=correct, counts=None, num_tokens=n) for i, n in enumerate(lengths)]


def test_thinkprune_schedule_round_trips_and_late_requests_use_their_step(
    runs: RunService,
) -> None:
    schedule = [[0, 4000], [100, 3000]]
    runs.configure("tp", RunConfigPatch(reward="thinkprune", reward_params={"schedule": schedule}))
    stored = runs.get_config("tp").reward_params
    assert stored == {"schedule": [[0, 4000.0], [100, 3000.0]], "exceed": 0.0}
    assert isinstance(stored["schedule"][1][0], int)  # type: ignore[index]
    assert isinstance(stored["schedule"][1][1], float)  # type: ignore[index]
    samples = tokens(3500, 2500)
    assert [r.reward for r in runs.score("tp", 150, samples).samples] == [0.0, 1.0]
    late = runs.score("tp", 50, samples)  # below the highest step seen: late, limit 4000
    assert late.late is True
    assert [r.reward for r in late.samples] == [1.0, 1.0]
    assert [r.length_reward for r in late.samples] == [0.0, 0.0]


def test_put_compares_reward_params_by_value(runs: RunService) -> None:
    patch = RunConfigPatch(reward="grpo_lead", reward_params={"ddof": 0, "alpha": 1})
    _, created = runs.configure("g", patch)
    assert created
    same = RunConfigPatch(reward="grpo_lead", reward_params={"ddof": 0.0, "alpha": 1.0})
    assert runs.configure("g", same)[1] is False
    # reward_params is compared whole, defaults filled in: naming a default changes nothing,
    # leaving out a non-default value is a different configuration.
    full = {"ddof": 0, "alpha": 1, "incorrect": -1}
    assert runs.configure("g", RunConfigPatch(reward_params=full))[1] is False
    with pytest.raises(RunConflict):
        runs.configure("g", RunConfigPatch(reward_params={"ddof": 0}))
    with pytest.raises(RunConflict):
        runs.configure("g", RunConfigPatch(reward_params={**full, "incorrect": 0}))
    # Parameters of another reward are a conflict of reward and parameters, not a bad value.
    other = RunConfigPatch(reward="laser", reward_params={"target_length": 5})
    with pytest.raises(RunConflict) as conflict:
        runs.configure("g", other)
    assert conflict.value.fields == ["reward", "reward_params"]
    with pytest.raises(RewardParamError) as info:
        runs.configure("g", RunConfigPatch(reward_params={"ddof": 0.5}))
    assert info.value.param == "reward_params.ddof"


def test_group_rewards_need_prompt_ids(runs: RunService) -> None:
    runs.configure("s", RunConfigPatch(reward="shorter_better"))
    with pytest.raises(SampleError) as info:
        runs.score("s", 0, [sample(0, prompt=None, counts=None, num_tokens=5)])
    assert info.value.param == "samples[0].prompt_id"
    result = runs.score("s", 0, tokens(300, 500) + tokens(100, correct=False))
    # L_SOL = 300: 2 - 0; 2 - 0.001 * 200; 0 - 0.001 * 200
    assert [r.reward for r in result.samples] == pytest.approx([2.0, 1.8, -0.2])
