"""The length rewards of recent papers and typed reward parameters over a real server:
shorter_better, grpo_lead, alp, laser, laser_d, thinkprune; 422 naming reward_params.<name>."""

from __future__ import annotations

import math
from typing import Any

import pytest

from sigreward.reward.params import BASELINE_PARAMS
from tests.api.conftest import run_id
from tests.api.test_runs import assert_envelope
from tests.support.server import ServerProcess

# (num_tokens, correct, prompt_id): prompt a has 3 of 4 correct, prompt b none of 2.
LENGTHS = [
    (100, True, "a"),
    (200, True, "a"),
    (400, True, "a"),
    (1000, False, "a"),
    (100, False, "b"),
    (300, False, "b"),
]


def put(server: ServerProcess, rid: str, body: dict[str, Any]) -> tuple[int, Any]:
    return server.request("PUT", f"/v1/runs/{rid}", body)


def post(server: ServerProcess, rid: str, step: int, lengths: list[tuple]) -> tuple[int, Any]:
    samples = [{"num_tokens": n, "correct": c, "prompt_id": p} for n, c, p in lengths]
    return server.request("POST", "/v1/rewards", {"run_id": rid, "step": step, "samples": samples})


# Each expected vector is the paper's formula worked by hand on LENGTHS.
CASES = [
    (
        "shorter_better",
        {},
        # a: L_SOL = 100 (shortest correct); b: no correct, L_SOL = mean(100, 300) = 200
        [2 - 0.0, 2 - 0.1, 2 - 0.3, 0 - 0.9, 0 - 0.1, 0 - 0.1],
    ),
    (
        "grpo_lead",
        {"alpha": 0.1},
        # a: correct 100, 200, 400: mean 700/3, sample std sqrt(((-400/3)^2 + (-100/3)^2 +
        # (500/3)^2) / 2) = 100 * sqrt(7/3); wrong samples get -1
        [
            math.exp(-0.1 * (100 - 700 / 3) / (100 * math.sqrt(7 / 3) + 1e-6)),
            math.exp(-0.1 * (200 - 700 / 3) / (100 * math.sqrt(7 / 3) + 1e-6)),
            math.exp(-0.1 * (400 - 700 / 3) / (100 * math.sqrt(7 / 3) + 1e-6)),
            -1.0,
            -1.0,
            -1.0,
        ],
    ),
    (
        "alp",
        {"beta": 0.1, "normalizer": 1000},
        # beta / N = 1e-4; a: p = 3/4; b: p = 0 -> 1/K = 1/2
        [
            1 - 1e-4 * 0.75 * 100,
            1 - 1e-4 * 0.75 * 200,
            1 - 1e-4 * 0.75 * 400,
            0 - 1e-4 * 0.75 * 1000,
            0 - 1e-4 * 0.5 * 100,
            0 - 1e-4 * 0.5 * 300,
        ],
    ),
    (
        "laser",
        {"target_length": 200},
        # +0.5 for correct and L <= 200
        [1.5, 1.5, 1.0, 0.0, 0.0, 0.0],
    ),
    (
        "laser_d",
        {"min_target": 100, "max_target": 1000, "target_step": 100},
        # K = 4. a is easy (3 of 4): C = floor(8/3) = 2, lengths 100, 200, 400, 1000:
        # floor(cov * 2) >= 1 needs cov >= 1/2: cov(100) = 1/4, cov(200) = 2/4 -> target 200
        [1.5, 1.5, 1.0, 0.0, 0.0, 0.0],
    ),
]


@pytest.mark.parametrize(("reward", "params", "expected"), CASES)
def test_paper_rewards(
    values_server: ServerProcess, reward: str, params: dict, expected: list[float]
) -> None:
    rid = run_id()
    status, run = put(values_server, rid, {"reward": reward, "reward_params": params})
    assert status == 201, run
    assert run["config"]["reward_params"] == {**BASELINE_PARAMS[reward], **params}
    status, body = post(values_server, rid, 0, LENGTHS)
    assert status == 200, body
    assert body["rewards"] == pytest.approx(expected)
    scores = [1.0 if c else 0.0 for _, c, _ in LENGTHS]
    assert body["length_rewards"] == pytest.approx(
        [r - sc for r, sc in zip(expected, scores, strict=True)]
    )
    if reward != "laser":  # the group rewards need the group
        samples = [{"num_tokens": 10, "correct": True}]
        status, error = values_server.request(
            "POST", "/v1/rewards", {"run_id": rid, "step": 1, "samples": samples}
        )
        assert status == 422
        assert_envelope(error, param="samples[0].prompt_id")


def test_thinkprune_limit_follows_the_step(values_server: ServerProcess) -> None:
    rid = run_id()
    schedule = [[0, 4000], [100, 3000], [200, 2000]]
    status, run = put(
        values_server, rid, {"reward": "thinkprune", "reward_params": {"schedule": schedule}}
    )
    assert status == 201, run
    assert run["config"]["reward_params"] == {"schedule": schedule, "exceed": 0.0}
    lengths = [(3500, True, "a"), (2000, True, "a"), (2001, True, "a"), (10, False, "a")]
    expected = {
        50: [1.0, 1.0, 1.0, 0.0],  # limit 4000
        150: [0.0, 1.0, 1.0, 0.0],  # limit 3000: 3500 is cut, reward 0
        200: [0.0, 1.0, 0.0, 0.0],  # limit 2000: 2000 kept, 2001 cut
    }
    for step, rewards in expected.items():
        status, body = post(values_server, rid, step, lengths)
        assert status == 200, body
        assert body["rewards"] == rewards
    # A late request for step 60 is scored with step 60's limit (4000).
    status, body = post(values_server, rid, 60, lengths)
    assert body["schedule"]["late"] is True
    assert body["rewards"] == expected[50]


def test_cosine_fractional_max_tokens_over_http(values_server: ServerProcess) -> None:
    rid = run_id()
    status, run = put(
        values_server, rid, {"reward": "cosine", "reward_params": {"max_tokens": 100.5}}
    )
    assert status == 201, run
    assert run["config"]["reward_params"]["max_tokens"] == 100.5
    status, body = post(values_server, rid, 0, [(100, True, "a")])
    assert status == 200, body
    # inside the window: 1 + (2 - 1) * (1 + cos(pi * 100 / 100.5)) / 2, never exceed (-10)
    assert body["rewards"] == pytest.approx([1 + (1 + math.cos(math.pi * 100 / 100.5)) / 2])


def test_integer_and_number_parameters_keep_their_types(values_server: ServerProcess) -> None:
    rid = run_id()
    status, run = put(
        values_server, rid, {"reward": "grpo_lead", "reward_params": {"ddof": 0, "alpha": 1}}
    )
    assert status == 201, run
    stored = run["config"]["reward_params"]
    assert stored["ddof"] == 0 and isinstance(stored["ddof"], int)
    assert stored["alpha"] == 1.0 and isinstance(stored["alpha"], float)
    # The same values written differently (1.0 for 1, 0.0 for 0) confirm the run: 200, not 409.
    status, again = put(
        values_server, rid, {"reward": "grpo_lead", "reward_params": {"ddof": 0.0, "alpha": 1.0}}
    )
    assert status == 200, again
    status, again = values_server.request("GET", f"/v1/runs/{rid}")
    assert again["config"]["reward_params"] == stored
    # A bad value on the existing run is a 422 naming it, not a conflict.
    status, error = put(values_server, rid, {"reward_params": {"ddof": 0.5}})
    assert status == 422, error
    assert_envelope(error, param="reward_params.ddof")
    status, error = put(values_server, rid, {"reward_params": {"ddof": 1}})
    assert status == 409, error


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"reward": "grpo_lead", "reward_params": {"ddof": 0.5}}, "reward_params.ddof"),
        (
            {"reward": "laser_d", "reward_params": {"expected_correct": 2.5}},
            "reward_params.expected_correct",
        ),
        ({"reward": "cosine", "reward_params": {"max_tokens": 0}}, "reward_params.max_tokens"),
        ({"reward": "dapo", "reward_params": {"cache_tokens": 0}}, "reward_params.cache_tokens"),
        ({"reward": "kimi", "reward_params": {"weight": True}}, "reward_params.weight"),
        ({"reward": "kimi", "reward_params": {"weight": "2"}}, "reward_params.weight"),
        ({"reward": "alp", "reward_params": {"gamma": 1}}, "reward_params.gamma"),
        ({"reward": "laser"}, "reward_params.target_length"),
        ({"reward": "thinkprune"}, "reward_params.schedule"),
        (
            {"reward": "thinkprune", "reward_params": {"schedule": [[0, 10], [5, -1]]}},
            "reward_params.schedule[1][1]",
        ),
        (
            {"reward": "thinkprune", "reward_params": {"schedule": [[3, 10]]}},
            "reward_params.schedule[0][0]",
        ),
        (
            {"reward": "laser_d", "reward_params": {"min_target": 900, "max_target": 800}},
            "reward_params.max_target",
        ),
    ],
)
def test_bad_reward_params_are_422_naming_the_field(
    values_server: ServerProcess, body: dict, param: str
) -> None:
    rid = run_id()
    status, error = put(values_server, rid, body)
    assert status == 422, error
    assert_envelope(error, param=param)
    assert error["error"]["message"].startswith(f"{param}: "), error
    assert values_server.request("GET", f"/v1/runs/{rid}")[0] == 404  # nothing was created


def test_non_finite_reward_param_is_422(values_server: ServerProcess) -> None:
    # Python's JSON reader accepts the NaN literal; the parameter check refuses it.
    status, error = values_server.request(
        "PUT",
        f"/v1/runs/{run_id()}",
        b'{"reward": "kimi", "reward_params": {"weight": NaN}}',
        headers={"Content-Type": "application/json"},
    )
    assert status == 422, error
    assert_envelope(error, param="reward_params.weight", contains="finite")
