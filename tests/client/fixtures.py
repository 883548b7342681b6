"""Live servers and a fault-injecting proxy for the client and integration tests.

Import the fixtures into a conftest.py: ``from tests.client.fixtures import *  # noqa``.
"""

from __future__ import annotations

import http.server
import socket
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.models import cached_model
from tests.support.server import ServerProcess, start_server

CLIENT_SRC = Path(__file__).resolve().parents[2] / "clients" / "python"
if str(CLIENT_SRC) not in sys.path:
    sys.path.insert(0, str(CLIENT_SRC))

__all__ = [
    "FaultProxy",
    "classifier_server",
    "small_server",
    "tiny_bert_dir",
    "values_server",
]


def _server(tmp_path_factory: pytest.TempPathFactory, args: list[str]) -> Iterator[ServerProcess]:
    server = start_server(args, data_dir=tmp_path_factory.mktemp("srv"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def values_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server without a model (values mode), default limits."""
    yield from _server(tmp_path_factory, [])


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A values server that accepts at most 3 samples and 4000 bytes per request."""
    yield from _server(tmp_path_factory, ["--max-samples", "3", "--max-body-bytes", "4000"])


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_model("tiny_bert", tmp_path_factory.getbasetemp() / "models")


@pytest.fixture(scope="module")
def classifier_server(
    tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path
) -> Iterator[ServerProcess]:
    """A server with the tiny random BERT classifier loaded (classifier mode available)."""
    yield from _server(tmp_path_factory, ["--model", str(tiny_bert_dir), "--device", "cpu"])


# A fault decides what the proxy does with the n-th request (0-based) for a path:
# "forward", "429" (answer 429 without forwarding), "503",
# "forward_then_503" (forward, then answer 503: the client never sees the result),
# "forward_then_drop" (forward, then close the connection without an answer).
Fault = Callable[[int, str, str], str]


class FaultProxy:
    """A tiny HTTP proxy on 127.0.0.1 in front of a real server that injects failures."""

    def __init__(self, upstream: str, fault: Fault, retry_after: str | None = "0") -> None:
        self.upstream = upstream.rstrip("/")
        self.fault = fault
        self.retry_after = retry_after
        self.seen: list[tuple[str, str, str]] = []  # (method, path, action)
        self.forwarded_bodies: list[bytes] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    n = sum(1 for m, p, _ in proxy.seen if (m, p) == (self.command, self.path))
                    action = proxy.fault(n, self.command, self.path)
                    proxy.seen.append((self.command, self.path, action))
                if action == "429":
                    headers = {"Retry-After": proxy.retry_after} if proxy.retry_after else {}
                    self._reply(
                        429,
                        b'{"error":{"type":"queue_full","message":"full","param":null}}',
                        headers,
                    )
                    return
                if action == "503":
                    self._reply(
                        503, b'{"error":{"type":"unavailable","message":"busy","param":null}}', {}
                    )
                    return
                status, payload, content_type = self._forward(body)
                if action == "forward_then_503":
                    self._reply(
                        503, b'{"error":{"type":"unavailable","message":"lost","param":null}}', {}
                    )
                elif action == "forward_then_drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                else:
                    self._reply(status, payload, {"Content-Type": content_type})

            def _forward(self, body: bytes) -> tuple[int, bytes, str]:
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in ("content-type", "authorization")
                }
                req = urllib.request.Request(
                    proxy.upstream + self.path,
                    data=body or None,
                    method=self.command,
                    headers=headers,
                )
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                try:
                    with opener.open(req, timeout=60) as resp:
                        out = resp.status, resp.read(), resp.headers.get("Content-Type", "")
                except urllib.error.HTTPError as err:
                    out = err.code, err.read(), err.headers.get("Content-Type", "")
                with proxy._lock:
                    proxy.forwarded_bodies.append(body)
                return out

            def _reply(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def actions(self, method: str, path: str) -> list[str]:
        return [a for m, p, a in self.seen if (m, p) == (method, path)]
