"""Values mode over HTTP counts in float64, exactly as the client's numbers say: any finite
doubles are accepted, and only a span max - min that overflows a double is a 422."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import run_id
from tests.api.test_runs import assert_envelope
from tests.support.server import ServerProcess

TINY = 5e-324  # the smallest subnormal double
# (values, normalised values, significant, insignificant) at threshold 0.5
CASES: list[tuple[list[float], list[float], int, int]] = [
    ([0.0, 0.49999999999, 1.0], [0.0, 0.49999999999, 1.0], 1, 2),  # float32 says 2 / 1
    ([-3e38, 0.0, 3e38], [0.0, 0.5, 1.0], 2, 1),  # float32 overflows
    ([1e16, 1e16 + 2, 1e16 + 4], [0.0, 0.5, 1.0], 2, 1),  # float32 sees three equal values
    ([TINY, 0.0, 2 * TINY], [0.5, 0.0, 1.0], 2, 1),
    ([-0.8e308, 0.0, 0.9e308], [0.0, (0.0 - -0.8e308) / (0.9e308 - -0.8e308), 1.0], 1, 2),
]
OVERFLOW = [-1.7e308, 1.7e308]


def test_significance_normalises_in_float64(values_server: ServerProcess) -> None:
    values = [case[0] for case in CASES]
    status, body = values_server.request("POST", "/v1/significance", {"values": values})
    assert status == 200, body
    for got, (_, normalised, sig, insig) in zip(body["results"], CASES, strict=True):
        assert got["values"] == normalised  # exact: the JSON carries every bit of a double
        assert (got["significant"], got["insignificant"]) == (sig, insig)


def test_significance_refuses_a_span_that_overflows_a_double(
    values_server: ServerProcess,
) -> None:
    status, error = values_server.request(
        "POST", "/v1/significance", {"values": [[0.0, 1.0], OVERFLOW]}
    )
    assert status == 422, error
    assert_envelope(error, param="values[1]", contains="overflows a double")


def _sample(values: list[float], **extra: Any) -> dict[str, Any]:
    return {"significance": values, "correct": True, **extra}


def test_rewards_count_in_float64(values_server: ServerProcess) -> None:
    rid = run_id()
    ref = {"significance": [0.0, 0.49999999999, 1.0]}
    samples = [_sample(case[0], reference=ref) for case in CASES]
    status, body = values_server.request(
        "POST", "/v1/rewards", {"run_id": rid, "step": 0, "samples": samples}
    )
    assert status == 200, body
    for got, (_, _, sig, insig) in zip(body["samples"], CASES, strict=True):
        assert (got["significant"], got["insignificant"]) == (sig, insig)


def test_rewards_refuse_a_span_that_overflows_a_double(values_server: ServerProcess) -> None:
    rid = run_id()
    ref = {"significant": 1, "insignificant": 1}
    for samples, param in [
        ([_sample([0.0, 1.0], reference=ref), _sample(OVERFLOW, reference=ref)],
         "samples[1].significance"),
        ([_sample([0.0, 1.0], reference={"significance": OVERFLOW})],
         "samples[0].reference.significance"),
    ]:  # fmt: skip
        status, error = values_server.request(
            "POST", "/v1/rewards", {"run_id": rid, "step": 0, "samples": samples}
        )
        assert status == 422, error
        assert_envelope(error, param=param, contains="overflows a double")
    assert values_server.request("GET", f"/v1/runs/{rid}")[0] == 404  # nothing was stored
