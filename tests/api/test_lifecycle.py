"""Process-level behaviour: durability across SIGKILL, draining on SIGTERM, and two replicas on
one PostgreSQL database finishing every step exactly once."""

from __future__ import annotations

import http.client
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import big_texts, run_id
from tests.api.test_runs import assert_envelope
from tests.support.server import ServerFactory, ServerProcess
from tests.support.waiting import wait_until

REF = {"significant": 2, "insignificant": 2}


def _samples(step: int, tag: str, n: int, correct_every: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{step}-{tag}-{i}",
            "significance": [0.0, 1.0, float(i % 3)],
            "correct": i % correct_every == 0,
            "reference": REF,
        }
        for i in range(n)
    ]


def _post(
    server: ServerProcess, rid: str, step: int, samples: list[dict[str, Any]]
) -> dict[str, Any]:
    status, body = server.request(
        "POST", "/v1/rewards", {"run_id": rid, "step": step, "samples": samples}
    )
    assert status == 200, body
    return body


def test_sigkill_mid_run_then_restart_keeps_the_schedule(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = server_factory(data_dir=data_dir)
    rid = run_id()
    server.request("PUT", f"/v1/runs/{rid}", {"slope_start_step": 0, "slope_period": 2})
    for step in range(6):
        _post(server, rid, step, _samples(step, "a", 4, 1 + step % 3))
    acknowledged: list[dict[str, Any]] = []
    stop = threading.Event()

    def hammer() -> None:
        i = 0
        while not stop.is_set():
            sample = {**_samples(6, "b", 1, 1)[0], "id": f"6-b-{i}"}
            try:
                status, _ = server.request(
                    "POST",
                    "/v1/rewards",
                    {"run_id": rid, "step": 6, "samples": [sample]},
                    timeout=60,
                )
            except (OSError, http.client.HTTPException):
                return  # the server died under us, perhaps while answering
            if status == 200:
                acknowledged.append(sample)
            i += 1

    worker = threading.Thread(target=hammer)
    worker.start()
    wait_until(lambda: len(acknowledged), lambda n: n >= 3, what="3 answered requests of step 6")
    # Step 6's requests finished steps 0..5; more of them change no history.
    status, before = server.request("GET", f"/v1/runs/{rid}")
    assert status == 200 and [h["step"] for h in before["schedule"]["history"]] == list(range(6))
    wait_until(lambda: len(acknowledged), lambda n: n >= 6, what="6 answered requests of step 6")
    server.kill()  # SIGKILL while requests are in flight
    stop.set()
    worker.join(timeout=60)
    assert acknowledged, "no request finished before the kill"

    restarted = server_factory(data_dir=data_dir)
    status, after = restarted.request("GET", f"/v1/runs/{rid}")
    assert status == 200
    assert after["config"] == before["config"]
    assert after["schedule"]["history"] == before["schedule"]["history"]
    assert after["schedule"]["k"] == before["schedule"]["k"]
    assert after["schedule"]["dynamic"] == before["schedule"]["dynamic"]
    assert after["schedule"]["low_slope_count"] == before["schedule"]["low_slope_count"]
    # Every answered sample was durable: re-sending it is a duplicate.
    body = _post(restarted, rid, 6, acknowledged)
    assert all(s["duplicate"] for s in body["samples"]), body["samples"]
    assert body["schedule"]["late"] is False


def _metric(server: ServerProcess, name: str) -> float | None:
    _, text = server.request("GET", "/metrics")
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else None


def test_sigterm_drains_in_flight_requests(server_factory: ServerFactory, tiny_model: Path) -> None:
    server = server_factory(
        args=["--model", str(tiny_model), "--device", "cpu", "--drain-timeout", "60"]
    )
    rid = run_id()
    body = {
        "run_id": rid,
        "step": 0,
        # Three times the usual big request: seconds of work even on a fast machine.
        "samples": [{"response": t, "correct": True, "reference": REF} for t in big_texts(n=60)],
    }
    result: dict[str, Any] = {}

    def slow() -> None:
        result["answer"] = server.request("POST", "/v1/rewards", body, timeout=120)

    worker = threading.Thread(target=slow)
    worker.start()
    wait_until(
        lambda: _metric(server, "sigreward_requests_in_flight"),
        lambda in_flight: (in_flight or 0) >= 1,
        interval=0.01,
        what="the big request in flight",
    )
    assert _metric(server, "sigreward_requests_in_flight") == 1.0
    server.signal(15)  # SIGTERM
    # /readyz turns 503 as soon as SIGTERM is handled; no fixed sleep, which a fast machine
    # would spend finishing the request.
    wait_until(
        lambda: server.get_status("/readyz"),
        lambda status: status == 503 or not worker.is_alive(),
        interval=0.01,
        what="/readyz 503 after SIGTERM",
    )
    if worker.is_alive():  # still draining: not ready, and new work is refused
        status, error = server.request("GET", "/readyz")
        assert status == 503 and "draining" in error["error"]["message"]
        assert server.request("GET", "/livez")[0] == 200
        small = {**body, "samples": body["samples"][:1]}
        status, error = server.request("POST", "/v1/rewards", small)
        assert status == 503
        assert_envelope(error, param=None, contains="draining")
    else:
        pytest.fail("the in-flight request finished before SIGTERM was handled; make it bigger")
    worker.join(timeout=120)
    status, answer = result["answer"]
    assert status == 200, answer
    assert len(answer["rewards"]) == len(body["samples"])
    server.process.wait(timeout=30)
    assert server.process.returncode == 0, server.log()[-2000:]
    assert "draining" in server.log()


# -- two replicas on one PostgreSQL database --------------------------------------------------
@pytest.mark.postgres
def test_two_replicas_finish_each_step_once(
    server_factory: ServerFactory, values_server: ServerProcess, pg_schema_url: str
) -> None:
    a = server_factory(args=["--database-url", pg_schema_url])
    b = server_factory(args=["--database-url", pg_schema_url])
    assert a.request("GET", "/v1/info")[1]["store"] == "postgresql"
    rid = run_id("pg")
    config = {"slope_start_step": 0, "slope_period": 3}
    assert a.request("PUT", f"/v1/runs/{rid}", config)[0] == 201
    assert b.request("PUT", f"/v1/runs/{rid}", config)[0] == 200
    steps, per_step, per_request = 7, 6, 3
    plan = {
        step: [_samples(step, f"r{j}", per_request, 1 + (step * j) % 4) for j in range(per_step)]
        for step in range(steps)
    }
    with ThreadPoolExecutor(max_workers=2 * per_step) as pool:
        for step in range(steps):
            # Each request goes to one replica and, concurrently, its retry to the other.
            futures = [
                pool.submit(_post, server, rid, step, samples)
                for j, samples in enumerate(plan[step])
                for server in ((a, b) if j % 2 else (b, a))
            ]
            answers = [f.result() for f in futures]
            assert not any(ans["schedule"]["late"] for ans in answers)
            # The two copies of each sample: exactly one was counted.
            by_id: dict[str, list[bool]] = {}
            for ans in answers:
                for s in ans["samples"]:
                    by_id.setdefault(s["id"], []).append(s["duplicate"])
            assert all(sorted(v) == [False, True] for v in by_id.values()), by_id
    status, finished = b.request("POST", f"/v1/runs/{rid}/steps/{steps - 1}/finish")
    assert status == 200
    history = finished["schedule"]["history"]
    assert [h["step"] for h in history] == list(range(steps))
    assert all(h["samples"] == per_step * per_request for h in history)

    # The same requests, once each, in order, on one SQLite server: the same schedule.
    solo = run_id("solo")
    values_server.request("PUT", f"/v1/runs/{solo}", config)
    for step in range(steps):
        for samples in plan[step]:
            _post(values_server, solo, step, samples)
    status, reference = values_server.request("POST", f"/v1/runs/{solo}/steps/{steps - 1}/finish")
    # Equal up to float summation order (the replicas added samples in another order).
    assert len(history) == len(reference["schedule"]["history"])
    for got, want in zip(history, reference["schedule"]["history"], strict=True):
        assert set(got) == set(want)
        for key, value in want.items():
            assert got[key] == (value if value is None else pytest.approx(value)), key
    for key in ("k", "dynamic", "low_slope_count", "last_finished_step"):
        assert finished["schedule"][key] == pytest.approx(reference["schedule"][key])
    assert a.request("GET", f"/v1/runs/{rid}")[1]["schedule"] == finished["schedule"]
