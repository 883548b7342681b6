"""Two replicas behind a round-robin proxy on one PostgreSQL store run a whole training run and
end with exactly the schedule a single replica (SQLite) computes for the same requests."""

from __future__ import annotations

import random
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.server import ServerFactory, http_request, server_factory

__all__ = ["server_factory"]

STEPS = 40
REQUESTS_PER_STEP = 4
SAMPLES_PER_REQUEST = 4
RUN_CONFIG = {
    "significance": "values",
    "reference": "given",
    "slope_start_step": 10,
    "slope_period": 5,
}


class RoundRobinProxy:
    """A TCP proxy on 127.0.0.1 that sends each new connection to the next backend in turn."""

    def __init__(self, backends: list[int]) -> None:
        self._backends = backends
        self._next = 0
        self._lock = threading.Lock()
        self.connections = [0] * len(backends)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                index = self._next
                self._next = (self._next + 1) % len(self._backends)
                self.connections[index] += 1
            upstream = socket.create_connection(("127.0.0.1", self._backends[index]))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self._listener.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _plan(seed: int = 7) -> dict[int, list[list[dict]]]:
    """Per step, the requests of a trainer whose accuracy rises, then goes flat and noisy."""
    rng = random.Random(seed)
    plan: dict[int, list[list[dict]]] = {}
    for step in range(STEPS):
        accuracy = min(0.8, 0.2 + 0.03 * step)
        requests = []
        for r in range(REQUESTS_PER_STEP):
            samples = []
            for j in range(SAMPLES_PER_REQUEST):
                length = rng.randint(3, 30)
                samples.append(
                    {
                        "id": f"s{step}-r{r}-{j}",
                        "prompt_id": f"p{r}",
                        "correct": rng.random() < accuracy,
                        "significance": [round(rng.random(), 3) for _ in range(length)],
                        "reference": {"significant": 12, "insignificant": 8},
                    }
                )
            requests.append(samples)
        plan[step] = requests
    return plan


def _post(request, run_id: str, step: int, samples: list[dict]) -> dict:
    status, body = request(
        "POST", "/v1/rewards", {"run_id": run_id, "step": step, "samples": samples}
    )
    assert status == 200, body
    return body


def _drive(request, run_id: str, concurrent: bool) -> list[dict]:
    """Runs the whole plan; a step's requests go out together, as a trainer's workers send them."""
    answers = []
    with ThreadPoolExecutor(max_workers=REQUESTS_PER_STEP) as pool:
        for step, requests in _plan().items():
            if concurrent:
                futures = [pool.submit(_post, request, run_id, step, s) for s in requests]
                answers.extend(f.result() for f in futures)
            else:
                answers.extend(_post(request, run_id, step, s) for s in requests)
    status, _ = request("POST", f"/v1/runs/{run_id}/steps/{STEPS - 1}/finish")
    assert status == 200
    return answers


def _client(base_url: str):
    """A request function like ServerProcess.request, for any base URL (here: the proxy)."""

    def request(method: str, path: str, body=None) -> tuple[int, dict]:
        status, _headers, parsed = http_request(base_url, method, path, body, timeout=60)
        return status, parsed

    return request


@pytest.mark.postgres
@pytest.mark.slow
def test_two_replicas_behind_a_proxy_match_one_replica(
    server_factory: ServerFactory, pg_schema_url: str
) -> None:
    single = server_factory()
    a = server_factory(args=["--database-url", pg_schema_url])
    b = server_factory(args=["--database-url", pg_schema_url])
    proxy = RoundRobinProxy([a.port, b.port])
    try:
        run_id = f"replicas-{uuid.uuid4().hex[:8]}"
        request = _client(f"http://127.0.0.1:{proxy.port}")
        assert request("PUT", f"/v1/runs/{run_id}", RUN_CONFIG)[0] == 201
        assert single.request("PUT", f"/v1/runs/{run_id}", RUN_CONFIG)[0] == 201

        replicated = _drive(request, run_id, concurrent=True)
        reference = _drive(single.request, run_id, concurrent=False)
        assert min(proxy.connections) > STEPS, "the proxy must spread requests over both"

        # Same rewards for every sample (requests of one step see the same k on both sides).
        def by_id(answers: list[dict]) -> dict[str, float]:
            return {s["id"]: s["reward"] for body in answers for s in body["samples"]}

        assert by_id(replicated) == pytest.approx(by_id(reference), abs=1e-9)

        _, shared_run = a.request("GET", f"/v1/runs/{run_id}")
        _, other_view = b.request("GET", f"/v1/runs/{run_id}")
        _, single_run = single.request("GET", f"/v1/runs/{run_id}")
        assert shared_run == other_view
        shared, alone = shared_run["schedule"], single_run["schedule"]
        assert len(shared["history"]) == STEPS
        assert [h["step"] for h in shared["history"]] == list(range(STEPS))
        for got, want in zip(shared["history"], alone["history"], strict=True):
            assert got["samples"] == want["samples"] == REQUESTS_PER_STEP * SAMPLES_PER_REQUEST
            assert got["score"] == pytest.approx(want["score"], abs=1e-12)
            assert got["k_after"] == pytest.approx(want["k_after"], abs=1e-9)
        for key in ("k", "dynamic", "low_slope_count", "last_finished_step"):
            assert shared[key] == pytest.approx(alone[key]), key
        assert shared["dynamic"] is True, "the run must reach the dynamic part of the schedule"
    finally:
        proxy.close()
