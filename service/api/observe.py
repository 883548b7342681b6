"""What is seen of every answer: the X-Request-Id, X-Process-Time-Ms and batcher timing
headers (``Exchange``), then the metrics labelled with the matched route's template, the
warning line of a refused request and one JSON access-log line (``record``)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.types import Message, Scope, Send

from sigreward.api.context import RequestContext
from sigreward.api.errors import ERROR_TYPES, ApiError
from sigreward.api.refusals import log_refused
from sigreward.metrics import Metrics

access_log = logging.getLogger("sigreward.access")

# Error bodies are small envelopes; the access log reads their "type" from at most this much.
_MAX_ERROR_BODY = 65536
# Probes and scrapes would drown the access log (their errors are still logged).
_QUIET_PATHS = frozenset({"/livez", "/readyz", "/metrics"})


class Exchange:
    """One request's answer as it goes out: ``send`` adds the headers and keeps the status and
    the start of an error body; ``answer`` sends an error envelope."""

    def __init__(self, scope: Scope, context: RequestContext, send: Send) -> None:
        self.started = time.perf_counter()
        self.method: str = scope.get("method", "GET")
        self.path: str = scope.get("path", "")
        self.context = context
        self.status = 500
        self.response_started = False
        self._send = send
        self._error_body: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body" and self.status >= 400:
            if sum(map(len, self._error_body)) < _MAX_ERROR_BODY:
                self._error_body.append(message.get("body", b""))
        if message["type"] == "http.response.start":
            self.response_started = True
            self.status = int(message["status"])
            message = {**message, "headers": [*message.get("headers", []), *self._headers()]}
        await self._send(message)

    def _headers(self) -> list[tuple[bytes, bytes]]:
        elapsed_ms = (time.perf_counter() - self.started) * 1000
        headers = [
            (b"x-request-id", self.context.request_id.encode()),
            (b"x-process-time-ms", f"{elapsed_ms:.1f}".encode()),
        ]
        timing = self.context.timing
        if timing is not None:
            headers.append((b"x-queue-time-ms", f"{timing.queue_ms:.1f}".encode()))
            headers.append((b"x-inference-time-ms", f"{timing.inference_ms:.1f}".encode()))
        return headers

    async def answer(self, error: ApiError) -> None:
        body = json.dumps(error.envelope()).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *[(k.encode(), v.encode()) for k, v in (error.headers or {}).items()],
        ]
        await self.send(
            {"type": "http.response.start", "status": error.status_code, "headers": headers}
        )
        await self.send({"type": "http.response.body", "body": body, "more_body": False})

    def error_body(self) -> bytes:
        return b"".join(self._error_body)


def _envelope_type(body: bytes, status: int) -> str:
    """The envelope's error type of an error answer (the status's default type otherwise)."""
    default = ERROR_TYPES.get(status, "error")
    try:
        kind = json.loads(body)["error"]["type"]
    except (ValueError, TypeError, KeyError):
        return default
    return kind if isinstance(kind, str) else default


def record(exchange: Exchange, query_string: bytes, endpoint: str, metrics: Metrics) -> None:
    """Count and time the answered request under its route template, and log it."""
    elapsed = time.perf_counter() - exchange.started
    status, path, context = exchange.status, exchange.path, exchange.context
    error: str | None = None
    if status >= 400:
        error = _envelope_type(exchange.error_body(), status)
        log_refused(
            exchange.method,
            path,
            query_string,
            status,
            exchange.error_body(),
            context.run_id,
            context.request_id,
        )
    metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
    metrics.request_duration.labels(endpoint=endpoint).observe(elapsed)
    if path in _QUIET_PATHS and status < 400:
        return
    fields: dict[str, Any] = {
        "method": exchange.method,
        "path": path,
        "status": status,
        "duration_ms": round(elapsed * 1000, 2),
        "request_id": context.request_id,
    }
    named = {"run_id": context.run_id, "step": context.step, "samples": context.samples}
    fields.update({name: value for name, value in named.items() if value is not None})
    if error is not None:
        fields["error"] = error
    if context.logged_texts is not None:
        fields["responses"] = context.logged_texts
    access_log.info("request", extra={"fields": fields})
