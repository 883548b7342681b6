"""Start a real ``sigreward serve`` subprocess on 127.0.0.1 for end-to-end tests.

Usage in a test module (or conftest.py)::

    from tests.support.server import server_factory  # noqa: F401  (the fixture)

    def test_something(server_factory):
        server = server_factory(args=["--max-samples", "4"])
        status, body = server.request("GET", "/v1/info")

Outside pytest, ``with running_server(...) as server:`` does the same. The server's stdout and
stderr go to ``server.log_path`` (a file, so a chatty server can never block on a full pipe);
``server.log()`` returns it, and start-up failures include its tail in the exception.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# A direct opener: proxy variables in the environment must never capture 127.0.0.1 traffic.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerStartError(RuntimeError):
    """The server exited or did not become live/ready in time; the message ends with its log."""


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1 (the caller retries on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_request(
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], Any]:
    """One HTTP call to any base URL (a server, or a proxy in front of several).

    ``body`` is JSON-encoded unless it is bytes. Returns (status, lower-cased headers, parsed
    JSON or text).
    """
    data: bytes | None
    all_headers = dict(headers or {})
    if body is None:
        data = None
    elif isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(base_url + path, data=data, method=method, headers=all_headers)
    try:
        with OPENER.open(req, timeout=timeout) as resp:
            status, raw, resp_headers = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as err:
        status, raw, resp_headers = err.code, err.read(), err.headers
    lowered = {k.lower(): v for k, v in resp_headers.items()}
    try:
        parsed: Any = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return status, lowered, parsed


@dataclass
class ServerProcess:
    """A running ``sigreward serve`` process and how to reach it."""

    base_url: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON lines of the log that are complete: a line the server is still writing
        has no newline yet and is left for the next read."""
        complete = self.log().rpartition("\n")[0]
        records = []
        for line in complete.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, Any]:
        """One HTTP call; ``body`` is JSON-encoded unless it is bytes. Returns (status, parsed)."""
        status, _headers, parsed = self.request_full(method, path, body, headers, timeout)
        return status, parsed

    def request_full(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, dict[str, str], Any]:
        """Like :meth:`request` but also returns the response headers (lower-cased names)."""
        return http_request(self.base_url, method, path, body, headers, timeout)

    def get_status(self, path: str, timeout: float = 2.0) -> int | None:
        """Status code of GET ``path``, or None when the server does not answer."""
        try:
            with OPENER.open(self.base_url + path, timeout=timeout) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as err:
            return int(err.code)
        except (OSError, urllib.error.URLError):
            return None

    def wait_for(self, path: str, expect: int = 200, timeout: float = 60.0) -> None:
        """Poll GET ``path`` until it answers ``expect``; raise ServerStartError otherwise."""
        deadline = time.monotonic() + timeout
        last: int | None = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServerStartError(
                    f"server exited with code {self.process.returncode} while waiting for "
                    f"{path}\n--- server log ---\n{self.log()[-4000:]}"
                )
            last = self.get_status(path)
            if last == expect:
                return
            time.sleep(0.05)
        raise ServerStartError(
            f"{path} did not answer {expect} within {timeout}s (last: {last})\n"
            f"--- server log ---\n{self.log()[-4000:]}"
        )

    def signal(self, sig: int) -> None:
        if self.alive():
            self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL at once (simulates a crash) and reap the process."""
        if self.alive():
            self.process.kill()
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Returns the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        return int(self.process.returncode)


def server_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    # The server must not read SIGREWARD_* settings that leak from the developer's shell.
    for name in [n for n in env if n.startswith("SIGREWARD_")]:
        del env[name]
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def spawn(
    argv: Sequence[str],
    port: int,
    data_dir: Path,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    new_session: bool = False,
) -> ServerProcess:
    """Start ``argv`` from the repo root with its output in ``log_path``; no waiting.

    ``new_session`` makes the process lead its own process group (to signal the whole group).
    """
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            list(argv),
            cwd=str(REPO_ROOT),
            env=server_env(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=new_session,
        )
    return ServerProcess(
        base_url=f"http://127.0.0.1:{port}",
        port=port,
        data_dir=data_dir,
        process=process,
        log_path=log_path,
        argv=list(argv),
    )


def serve_argv(port: int, data_dir: Path, *args: object) -> list[str]:
    """``python -m sigreward serve`` on 127.0.0.1:``port`` with its store in ``data_dir``."""
    return [
        sys.executable, "-m", "sigreward", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(data_dir), *[str(a) for a in args],
    ]  # fmt: skip


def start_server(
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    data_dir: Path | str | None = None,
    wait_ready: bool = True,
    timeout: float = 120.0,
    port: int | None = None,
    log_dir: Path | str | None = None,
) -> ServerProcess:
    """Start ``python -m sigreward serve`` and wait for /livez (and /readyz if asked).

    ``args`` are extra CLI flags (e.g. ``["--model", str(path), "--api-key", "k"]``);
    ``env`` extra environment variables. ``data_dir`` defaults to a fresh temporary directory.
    ``--host``, ``--port`` and ``--data-dir`` are set here. When the chosen port turns out to be
    taken (a race with another process), a new one is tried, up to three times.
    """
    data_path = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="sr-"))
    data_path.mkdir(parents=True, exist_ok=True)
    logs = Path(log_dir) if log_dir is not None else data_path
    logs.mkdir(parents=True, exist_ok=True)
    attempts = 1 if port is not None else 3
    last_error: ServerStartError | None = None
    for attempt in range(attempts):
        chosen = port if port is not None else free_port()
        argv = serve_argv(chosen, data_path, *args)
        log_path = logs / f"server-{chosen}-{int(time.time() * 1000)}-{attempt}.log"
        server = spawn(argv, chosen, data_path, log_path, env=env)
        try:
            server.wait_for("/livez", 200, timeout)
            if wait_ready:
                server.wait_for("/readyz", 200, timeout)
            return server
        except ServerStartError as err:
            server.stop(timeout=5)
            last_error = err
            if "address already in use" not in server.log().lower():
                raise
    assert last_error is not None
    raise last_error


@contextmanager
def running_server(
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    data_dir: Path | str | None = None,
    wait_ready: bool = True,
    timeout: float = 120.0,
) -> Iterator[ServerProcess]:
    """Context manager form of :func:`start_server`; stops the server on exit."""
    server = start_server(args, env=env, data_dir=data_dir, wait_ready=wait_ready, timeout=timeout)
    try:
        yield server
    finally:
        server.stop()


ServerFactory = Callable[..., ServerProcess]


@pytest.fixture
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """A callable with :func:`start_server`'s arguments; every server it starts is stopped at
    teardown. Without ``data_dir`` each server gets a fresh temporary directory."""
    started: list[ServerProcess] = []

    def factory(
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        data_dir: Path | str | None = None,
        wait_ready: bool = True,
        timeout: float = 120.0,
        port: int | None = None,
    ) -> ServerProcess:
        directory = data_dir if data_dir is not None else tmp_path_factory.mktemp("server-data")
        server = start_server(
            args, env=env, data_dir=directory, wait_ready=wait_ready, timeout=timeout, port=port
        )
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
