"""The label verifier's helper process: a failure to verify is never stored as "wrong".

Unit level: a helper that dies mid-call raises ``VerifierUnavailable`` (it used to answer
False for every pair), and the helper survives SIGINT / SIGTERM sent to it. End to end: a
labelled request in flight while the server's whole process group gets SIGTERM (what Ctrl-C,
``timeout`` or ``kill -- -PGID`` do) either succeeds with the right outcomes or fails with 503;
the stored step never holds a wrong outcome.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sigreward.domain import verify
from tests.api.conftest import run_id
from tests.support.server import (
    ServerProcess,
    ServerStartError,
    free_port,
    serve_argv,
    spawn,
    start_server,
)
from tests.support.waiting import wait_until


def crash_helper(label: str, response: str) -> bool:
    """A verifier that kills the process running it (module level: pickled by reference)."""
    os._exit(3)


def _off_main_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on another thread (the helper process is only used off the main thread)."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - handed back to the test
            out["error"] = err

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=180)
    assert not thread.is_alive(), "the verifier call did not return"
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.fixture
def verifier() -> Iterator[verify.LabelVerifier]:
    owner = verify.LabelVerifier()
    yield owner
    verify.VERIFIERS.pop("crash", None)
    owner.close()


def test_a_helper_that_dies_raises_instead_of_answering_wrong(
    verifier: verify.LabelVerifier,
) -> None:
    verify.register_verifier("crash", crash_helper)
    with pytest.raises(verify.VerifierUnavailable, match="nothing was verified"):
        _off_main_thread(lambda: verifier.verify_many(["4"], ["\\boxed{4}"], "crash"))
    # The next call starts a fresh helper and verifies normally.
    assert _off_main_thread(lambda: verifier.verify_many(["4", "4"], ["\\boxed{4}", "5"])) == [
        True,
        False,
    ]


def test_the_helper_ignores_sigint_and_sigterm_and_close_stops_it(
    verifier: verify.LabelVerifier,
) -> None:
    assert _off_main_thread(lambda: verifier.verify_many(["4"], ["\\boxed{4}"])) == [True]
    process = verifier._helper._process
    assert process is not None and process.is_alive() and process.pid is not None
    os.kill(process.pid, signal.SIGTERM)
    os.kill(process.pid, signal.SIGINT)
    # Pending signals are delivered before the helper runs again, and it must run to answer:
    # an answer from the same helper shows it survived both, however late it was scheduled.
    assert _off_main_thread(lambda: verifier.verify_many(["4"], ["x = \\boxed{4}"])) == [True]
    assert verifier._helper._process is process  # the same helper answered
    assert process.is_alive()
    verifier.close()
    process.join(timeout=10)
    assert not process.is_alive()


# -- end to end: a group signal during a labelled request ----------------------------------

N_SAMPLES = 48


def _labelled_samples(n: int) -> list[dict[str, Any]]:
    # Each answer is right; enough sympy work per pair that verifying takes a while.
    samples = []
    for i in range(n):
        a, b = i + 3, 2 * i + 5
        answer = f"\\frac{{{a}}}{{{b}}} + \\sqrt{{{a * a}}}"
        samples.append(
            {
                "significance": [0.1, 0.9, 0.5],
                "reference": {"significant": 1, "insignificant": 1},
                "label": answer,
                "response": f"Simplifying step by step, the result is $\\boxed{{{answer}}}$.",
            }
        )
    return samples


def _start_in_own_group(data_dir: Path, attempts: int = 3) -> ServerProcess:
    """A server that leads its own process group (so the test can signal the whole group).

    A port taken between picking it and the server binding it gets a new one."""
    for attempt in range(attempts):
        port = free_port()
        argv = serve_argv(port, data_dir, "--drain-timeout", "120", "--max-samples", N_SAMPLES)
        server = spawn(argv, port, data_dir, data_dir / "server.log", new_session=True)
        try:
            server.wait_for("/readyz", 200, 120)
            return server
        except Exception as error:
            _kill_group(server)
            port_taken = isinstance(error, ServerStartError) and (
                "address already in use" in server.log().lower()
            )
            if not port_taken or attempt == attempts - 1:
                raise
    raise AssertionError(f"no server started in {attempts} attempts")


def _in_flight(server: ServerProcess) -> float:
    text = server.request("GET", "/metrics")[1]
    match = re.search(r"^sigreward_requests_in_flight (\S+)$", str(text), re.M)
    return float(match.group(1)) if match else 0.0


def _kill_group(server: ServerProcess) -> None:
    try:
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.process.wait(timeout=30)


def test_group_sigterm_during_a_labelled_request_never_stores_a_wrong_outcome(
    tmp_path: Path,
) -> None:
    server = _start_in_own_group(tmp_path)
    rid = run_id("grp")
    try:
        # Spawn and warm the helper (it imports math-verify) before the timed request.
        status, warm = server.request(
            "POST",
            "/v1/rewards",
            {"run_id": rid + "-warm", "step": 0, "samples": _labelled_samples(1)},
            timeout=120,
        )
        assert status == 200 and warm["samples"][0]["correct"] is True, warm
        started = time.monotonic()
        status, timed = server.request(
            "POST",
            "/v1/rewards",
            {"run_id": rid + "-timing", "step": 0, "samples": _labelled_samples(N_SAMPLES)},
            timeout=120,
        )
        verify_s = time.monotonic() - started
        assert status == 200 and all(s["correct"] for s in timed["samples"]), timed

        answer: dict[str, Any] = {}

        def send() -> None:
            answer["reply"] = server.request(
                "POST",
                "/v1/rewards",
                {"run_id": rid, "step": 0, "samples": _labelled_samples(N_SAMPLES)},
                timeout=180,
            )

        thread = threading.Thread(target=send)
        thread.start()
        wait_until(
            lambda: _in_flight(server),
            lambda in_flight: in_flight >= 1 or not thread.is_alive(),
            interval=0.01,
            what="the labelled request in flight",
        )
        # Signal the whole group while the helper is verifying this request (a deliberate
        # pause into the verification, which took verify_s above).
        time.sleep(min(0.4 * verify_s, 1.0))
        os.killpg(server.pid, signal.SIGTERM)
        thread.join(timeout=180)
        assert server.process.wait(timeout=150) == 0, server.log()[-3000:]
    finally:
        if server.alive():
            _kill_group(server)

    status, body = answer["reply"]
    assert status in (200, 503), body
    if status == 200:
        assert [s["correct"] for s in body["samples"]] == [True] * N_SAMPLES, body

    # What was stored: restart on the same data and finish the step.
    again = start_server(data_dir=tmp_path, args=["--max-samples", str(N_SAMPLES)])
    try:
        finished_status, run = again.request("POST", f"/v1/runs/{rid}/steps/0/finish")
        if status == 503:
            assert finished_status == 404 or run["schedule"]["history"] == [], run
        else:
            assert finished_status == 200, run
            history = run["schedule"]["history"]
            assert [(h["step"], h["samples"], h["score"]) for h in history] == [
                (0, N_SAMPLES, 1.0)
            ], history
    finally:
        again.stop()
