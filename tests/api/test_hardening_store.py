"""Database outages: with the PostgreSQL store down, requests answer 503 with
Retry-After (never 500) and /readyz turns 503; after a restart the dead pooled connections are
not reused. The test restarts its own private cluster under load."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.api.conftest import run_id
from tests.support.pgcluster import PgCluster, pg_cluster
from tests.support.server import ServerFactory, ServerProcess
from tests.support.waiting import wait_until

__all__ = ["pg_cluster"]

SAMPLE = {
    "significance": [0, 1],
    "correct": True,
    "reference": {"significant": 1, "insignificant": 1},
}


def _post(server: ServerProcess, rid: str, step: int) -> tuple[int, dict[str, str], Any]:
    body = {"run_id": rid, "step": step, "samples": [SAMPLE]}
    return server.request_full("POST", "/v1/rewards", body, timeout=60)


@pytest.mark.postgres
def test_a_postgres_restart_under_load_answers_503_then_recovers(
    server_factory: ServerFactory, pg_cluster: PgCluster
) -> None:
    server = server_factory(args=["--database-url", pg_cluster.url])
    rid = run_id("pg")
    assert _post(server, rid, 0)[0] == 200
    answers: list[tuple[int, dict[str, str], Any]] = []
    stop = threading.Event()

    def load() -> None:
        step = 1
        while not stop.is_set():
            answers.append(_post(server, rid, step))
            step += 1

    workers = [threading.Thread(target=load) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        wait_until(lambda: len(answers) >= 10, what="10 answers before the restart")
        pg_cluster.stop("fast")
        wait_until(lambda: any(a[0] == 503 for a in answers), what="a 503 while PostgreSQL is down")
        status, headers, error = _post(server, rid, 10_000)
        assert status == 503, error
        assert int(headers["retry-after"]) >= 1
        assert error["error"]["type"] == "unavailable" and "store" in error["error"]["message"]
        assert server.request("GET", "/readyz")[0] == 503
        assert server.request("GET", "/livez")[0] == 200
        pg_cluster.start()
        wait_until(
            lambda: server.get_status("/readyz"),
            lambda status: status == 200,
            timeout=60,
            what="/readyz 200 after the restart",
        )
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=120)
    statuses = {a[0] for a in answers}
    assert statuses <= {200, 503}, [a for a in answers if a[0] not in (200, 503)][:3]
    for status, headers, _ in answers:
        if status == 503:
            assert "retry-after" in headers
    # Every pooled connection died in the restart: none of them may answer a request now.
    for step in range(20_000, 20_020):
        status, _, answer = _post(server, rid, step)
        assert status == 200, answer
    assert "Traceback" not in server.log(), server.log()[-3000:]
