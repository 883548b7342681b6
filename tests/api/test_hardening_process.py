"""Hardening of the process: the drain timeout answers the 503 envelope, /metrics
needs a key when keys are set, clients that give up lose their queue slot, and slow or idle
connections are closed. Real server processes throughout."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

from tests.api.conftest import big_texts, run_id
from tests.api.test_runs import assert_envelope
from tests.support.server import ServerFactory, ServerProcess
from tests.support.waiting import wait_until

REF = {"significant": 2, "insignificant": 2}
KEY = "key-one"


def _big_body(rid: str, n: int = 60, step: int = 0) -> dict[str, Any]:
    return {
        "run_id": rid,
        "step": step,
        "samples": [{"response": t, "correct": True, "reference": REF} for t in big_texts(n=n)],
    }


def _queued_requests(server: ServerProcess) -> float:
    text = server.request("GET", "/metrics", headers={"Authorization": f"Bearer {KEY}"})[1]
    for line in str(text).splitlines():
        if line.startswith("sigreward_queue_requests "):
            return float(line.split()[1])
    return 0.0


def _wait_for_queue(server: ServerProcess, at_least: float) -> None:
    wait_until(
        lambda: _queued_requests(server),
        lambda queued: queued >= at_least,
        interval=0.02,
        what=f"{at_least:g} requests in the queue",
    )


# -- item 5: drain timeout ---------------------------------------------------------------------
def test_requests_cut_by_the_drain_timeout_get_the_503_envelope(
    server_factory: ServerFactory, tiny_model: Path
) -> None:
    server = server_factory(
        args=["--model", str(tiny_model), "--device", "cpu", "--drain-timeout", "0.5"]
    )
    answers: list[tuple[int, Any]] = []

    def post(rid: str) -> None:
        # Enough work that the last requests cannot finish inside the 0.5 s drain on any
        # machine: six requests of 150 long texts each.
        answers.append(server.request("POST", "/v1/rewards", _big_body(rid, n=150), timeout=180))

    workers = [threading.Thread(target=post, args=(run_id("drain"),)) for _ in range(6)]
    for worker in workers:
        worker.start()
    _wait_for_queue(server, 3)
    server.signal(15)
    for worker in workers:
        worker.join(timeout=120)
    server.process.wait(timeout=60)
    assert len(answers) == 6
    cut = [answer for status, answer in answers if status != 200]
    assert cut, "every request finished inside the drain timeout; make them bigger"
    for status, answer in answers:
        assert status in (200, 503), (status, answer)
        if status == 503:
            assert_envelope(answer, param=None)
            assert answer["error"]["type"] == "unavailable"
    assert "Exception in ASGI application" not in server.log(), server.log()[-3000:]


# -- item 9: /metrics with API keys ----------------------------------------------------------
def test_metrics_need_a_key_when_keys_are_set(server_factory: ServerFactory) -> None:
    server = server_factory(args=["--api-key", KEY])
    status, error = server.request("GET", "/metrics")
    assert status == 401, error
    assert_envelope(error)
    status, text = server.request("GET", "/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert status == 200 and "sigreward_requests_total" in text
    # The probes stay open.
    assert server.request("GET", "/livez")[0] == 200
    assert server.request("GET", "/readyz")[0] == 200
    opened = server_factory(args=["--api-key", KEY, "--metrics-open"])
    status, text = opened.request("GET", "/metrics")
    assert status == 200 and "sigreward_requests_total" in text


# -- item 7: slow clients --------------------------------------------------------------------
def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed ``sock`` within ``seconds`` (and what it sent first)."""
    sock.settimeout(seconds)
    received = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True, received
            received += chunk
    except TimeoutError:
        return False, received
    except ConnectionResetError:
        return True, received


def test_slow_and_idle_connections_are_closed(server_factory: ServerFactory) -> None:
    server = server_factory(args=["--header-timeout", "1", "--body-timeout", "1"])
    limits = server.request("GET", "/v1/info")[1]["limits"]
    assert (limits["header_timeout_s"], limits["body_timeout_s"]) == (1.0, 1.0)
    idle = socket.create_connection(("127.0.0.1", server.port))
    partial_headers = socket.create_connection(("127.0.0.1", server.port))
    partial_headers.sendall(b"POST /v1/rewards HTTP/1.1\r\nHost: x\r\n")
    partial_body = socket.create_connection(("127.0.0.1", server.port))
    body = json.dumps({"run_id": run_id(), "step": 0, "samples": []}).encode()
    partial_body.sendall(
        b"POST /v1/rewards HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:10]
    )
    try:
        for sock in (idle, partial_headers):
            closed, _ = _closed_within(sock, 30)
            assert closed, "a connection without complete headers stayed open"
        closed, sent = _closed_within(partial_body, 30)
        assert closed, "a connection with a stalled body stayed open"
        assert b" 408 " in sent.split(b"\r\n", 1)[0], sent[:200]
    finally:
        for sock in (idle, partial_headers, partial_body):
            sock.close()
    assert server.request("GET", "/livez")[0] == 200


def test_open_connections_are_bounded(server_factory: ServerFactory) -> None:
    server = server_factory(args=["--max-connections", "4", "--header-timeout", "30"])
    # The server accepts connections in the order they were made (one listening socket), so
    # the held ones are counted before the extra one's request is read: no sleep needed.
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(4)]
    try:
        extra = socket.create_connection(("127.0.0.1", server.port))
        try:
            extra.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            closed, sent = _closed_within(extra, 30)
            assert sent.startswith(b"HTTP/1.1 503"), sent[:200]
        finally:
            extra.close()
    finally:
        for sock in held:
            sock.close()
    wait_until(
        lambda: server.get_status("/livez"),
        lambda status: status == 200,
        what="/livez 200 once the held connections are closed",
    )


# -- item 2: the in-flight body budget ----------------------------------------------------------
def test_bodies_beyond_the_in_flight_budget_wait_then_get_429(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        args=["--max-inflight-body-bytes", "1000000", "--body-wait", "0.5", "--body-timeout", "30"]
    )
    # One client declares a 900 kB body and stalls after a few bytes: it holds the budget.
    holder = socket.create_connection(("127.0.0.1", server.port))
    holder.sendall(
        b"POST /v1/rewards HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 900000\r\n\r\n{"
    )
    body = json.dumps(
        {"run_id": run_id(), "step": 0, "samples": [{"response": "x" * 400_000}]}
    ).encode()

    def post() -> tuple[int, dict[str, str], Any]:
        return server.request_full(
            "POST", "/v1/rewards", body, headers={"Content-Type": "application/json"}
        )

    try:
        # 413 (the body is read, and is too long) until the held body has taken the budget.
        status, headers, error = wait_until(
            post,
            lambda answer: answer[0] != 413,
            what="the held body to take the budget (an answer other than 413)",
        )
        assert status == 429, error
        assert_envelope(error, param=None, contains="in flight")
        assert error["error"]["type"] == "server_busy"
        assert int(headers["retry-after"]) >= 1
        # Small requests still fit next to the held body; probes need no budget at all.
        assert server.request("GET", "/livez")[0] == 200
    finally:
        holder.close()
    # The budget is free again once the server has seen the holder go: the body is read (and
    # is too long).
    wait_until(
        post,
        lambda answer: answer[0] == 413,
        what="the budget freed after the holder left (413 instead of 429)",
    )
