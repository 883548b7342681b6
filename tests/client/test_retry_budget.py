"""The SDK keeps retrying an unreachable server for a time budget (not a handful of tries),
says so once, reads SIGREWARD_* defaults, and lets the server count steps without moving the
count on retries."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path

import pytest

from sigreward_client import APIError, ConnectionFailed, RewardClient
from sigreward_client._core import RetryClock, RetryPolicy
from tests.client.fixtures import FaultProxy
from tests.support.server import ServerProcess, free_port, start_server

REF = {"significant": 2, "insignificant": 2}


def _sample() -> dict[str, object]:
    return {"significance": [1.0, 0.1], "correct": True, "reference": REF}


def test_retry_clock_counts_and_budget() -> None:
    clock = RetryClock(RetryPolicy(budget=60.0, max_retries=2, backoff_base=0.01))
    assert clock.next_delay() is not None and clock.next_delay() is not None
    assert clock.next_delay() is None  # max_retries
    spent = RetryClock(RetryPolicy(budget=0.0))
    assert spent.next_delay() is None
    short = RetryClock(RetryPolicy(budget=0.5, backoff_base=10.0, backoff_max=10.0))
    delay = short.next_delay(retry_after=30.0)
    assert delay is not None and delay <= 0.5  # the last try lands at the budget's end


def test_environment_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGREWARD_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("SIGREWARD_RUN_ID", "from-env")
    monkeypatch.setenv("SIGREWARD_API_KEY", "env-key")
    monkeypatch.setenv("SIGREWARD_RETRY_BUDGET", "7.5")
    monkeypatch.setenv("SIGREWARD_TIMEOUT", "3")
    with RewardClient() as client:
        assert client.base_url == "http://127.0.0.1:9" and client.run_id == "from-env"
        assert client._http.headers["authorization"] == "Bearer env-key"
        assert client.retry.budget == 7.5 and client.timeout == 3.0
    with RewardClient("http://h:1", "r", api_key="", retry_budget=1) as client:
        assert "authorization" not in client._http.headers and client.retry.budget == 1
    monkeypatch.setenv("SIGREWARD_RETRY_BUDGET", "soon")
    with pytest.raises(ValueError, match="SIGREWARD_RETRY_BUDGET"):
        RewardClient()
    monkeypatch.delenv("SIGREWARD_URL")
    with pytest.raises(ValueError, match="SIGREWARD_URL"):
        RewardClient(run_id="r")


def test_gives_up_after_the_budget(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    with RewardClient(f"http://127.0.0.1:{port}", "r", retry_budget=0.5, backoff_base=0.05) as c:
        with caplog.at_level(logging.WARNING, logger="sigreward_client"):
            with pytest.raises(ConnectionFailed, match="gave up after"):
                c.info()
    assert len([r for r in caplog.records if "retrying for up to" in r.getMessage()]) == 1


def test_a_restarting_server_is_waited_for(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGTERM, then the server comes back 10 s later on the same port and store: longer than
    the old 5 retries (at most about 8 s of backoff) ever waited."""
    data_dir = tmp_path / "store"
    server = start_server([], data_dir=data_dir)
    servers = [server]
    run = f"r-{uuid.uuid4().hex[:8]}"
    try:
        with RewardClient(server.base_url, run) as client:
            client.configure(significance="values", reference="given")
            client.score(0, [_sample()])
            assert server.stop() == 0

            def restart() -> None:
                time.sleep(10)
                servers.append(start_server([], data_dir=data_dir, port=server.port))

            threading.Thread(target=restart, daemon=True).start()
            with caplog.at_level(logging.WARNING, logger="sigreward_client"):
                result = client.score(1, [_sample()])
            assert result.step == 1
            assert [(h.step, h.samples) for h in client.finish_step(1).schedule.history] == [
                (0, 1),
                (1, 1),
            ]
        messages = [r.getMessage() for r in caplog.records]
        assert len([m for m in messages if "retrying for up to 120 s" in m]) == 1
        assert any("answers again" in m for m in messages)
    finally:
        for one in servers:
            one.stop()


def test_step_less_scoring_counts_retries_once(values_server: ServerProcess) -> None:
    """score(None, ...): the server numbers the samples; a request whose answer was lost is
    resent with the same ids and lands in the step it was counted in."""
    run = f"r-{uuid.uuid4().hex[:8]}"

    def fault(n: int, method: str, path: str) -> str:
        return (
            "forward_then_503"
            if method == "POST" and path == "/v1/rewards" and n == 1
            else ("forward")
        )

    with FaultProxy(values_server.base_url, fault) as proxy:
        with RewardClient(proxy.base_url, run, backoff_base=0.01) as client:
            client.configure(significance="values", reference="given", samples_per_step=2)
            steps = [client.score(None, [_sample()]).step for _ in range(3)]
            view = client.finish_step(1)
    assert steps == [0, 0, 1]
    assert view.schedule is not None
    assert [(h.step, h.samples) for h in view.schedule.history] == [(0, 2), (1, 1)]
    assert view.counted_samples == 3


def test_step_less_scoring_needs_samples_per_step(values_server: ServerProcess) -> None:
    with RewardClient(values_server.base_url, f"r-{uuid.uuid4().hex[:8]}") as client:
        client.configure(significance="values", reference="given")
        with pytest.raises(APIError) as err:
            client.score(None, [_sample()])
    assert err.value.status_code == 422 and err.value.param == "step"
