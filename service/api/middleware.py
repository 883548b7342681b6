"""One pure-ASGI middleware for what every request shares, in this order: request id, bearer
auth (401; /metrics included unless metrics_open), readiness / draining gate (503), the body
read within its limits (``sigreward.api.bodies``: 413 from Content-Length or as soon as the
streamed bytes pass the limit, the in-flight body budget with 429, 408 on a stalled body), the
JSON check in the parse thread (``sigreward.api.jsonbody``: 400 invalid_json, 422 for NaN or a
lone surrogate), JSON content type of bodies sent to a route (415), a disconnect watcher that
lets the batcher drop work of clients that left, in-flight count for draining, timing headers,
metrics (labelled with the matched route's template), one JSON access-log line, a 503 envelope
for requests cut by the drain timeout, and a last-resort 500 envelope."""

from __future__ import annotations

import asyncio
import email.message
import hmac
import json
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any

from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sigreward.api.bodies import BodyBudget, BodyReader
from sigreward.api.early import EarlyResponse
from sigreward.api.errors import ERROR_TYPES, envelope
from sigreward.api.jsonbody import UNPARSED, inspect_body
from sigreward.api.refusals import log_refused
from sigreward.api.state import ServiceState
from sigreward.api.url_key import URL_KEY_PATHS, take_url_key
from sigreward.batching import CLIENT_GONE

access_log = logging.getLogger("sigreward.access")
error_log = logging.getLogger("sigreward.api")

# Open without a bearer token: probes, the static web page, and the API's own documentation
# pages (a browser cannot send a bearer token to open them). /metrics names runs: it is open
# only when no keys are set or the operator opens it (metrics_open).
OPEN_PATHS = frozenset(
    {"/livez", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
METRICS_PATH = "/metrics"
OPEN_PREFIXES = ("/ui",)
# Answered even while not ready or draining.
UNGATED_PATHS = frozenset(
    {"/", "/livez", "/readyz", "/metrics", "/v1/info", "/openapi.json", "/docs", "/redoc"}
)
UNGATED_PREFIXES = ("/ui", "/docs/")

_MAX_REQUEST_ID = 128
# Error bodies are small envelopes; the access log reads their "type" from at most this much.
_MAX_ERROR_BODY = 65536
UNMATCHED = "unmatched"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def _watch_disconnect(receive: Receive, gone: asyncio.Future[None]) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not gone.done():
                gone.set_result(None)
            return


def is_json_content_type(value: bytes | None) -> bool:
    """application/json or application/*+json, parameters (charset) allowed; as FastAPI."""
    if not value:
        return False
    message = email.message.Message()
    message["content-type"] = value.decode("latin-1")
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def _error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "error")


def _envelope_type(body: bytes, status: int) -> str:
    """The envelope's error type of an error answer (the status's default type otherwise)."""
    try:
        kind = json.loads(body)["error"]["type"]
    except (ValueError, TypeError, KeyError):
        return _error_type(status)
    return kind if isinstance(kind, str) else _error_type(status)


def _route_templates(routes: Iterable[BaseRoute]) -> list[tuple[Any, str]]:
    """(matcher, path template) of every endpoint, in the router's matching order.

    FastAPI >= 0.16x keeps included routers as objects (``effective_route_contexts``) whose
    endpoints have no ``.path`` on the router itself; older versions and plain Starlette
    routes expose ``path`` directly."""
    found: list[tuple[Any, str]] = []
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for context in contexts():
                template = getattr(context, "path", None) or getattr(context, "path_format", "")
                if template:
                    found.append((context, str(template)))
            continue
        template = getattr(route, "path", None)
        if template is not None:
            found.append((route, str(template)))
    return found


def open_paths(metrics_open: bool) -> frozenset[str]:
    """The paths served without a bearer token when API keys are set."""
    return OPEN_PATHS | {METRICS_PATH} if metrics_open else OPEN_PATHS


def _is_gated(path: str) -> bool:
    return not (path in UNGATED_PATHS or path.startswith(UNGATED_PREFIXES))


def _request_id(raw: bytes | None) -> str:
    if raw:
        text = raw.decode("latin-1")
        if len(text) <= _MAX_REQUEST_ID and text.isprintable() and text.isascii():
            return text
    return uuid.uuid4().hex


def bearer_ok(authorization: bytes | None, keys: Iterable[bytes]) -> bool:
    """Constant-time check of ``Authorization: Bearer <token>`` against every configured key."""
    if not authorization:
        return False
    scheme, _, token = authorization.partition(b" ")
    if scheme.lower() != b"bearer" or not token:
        return False
    token = token.strip()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token, key)
    return matched


class ServiceMiddleware:
    def __init__(self, app: ASGIApp, state: ServiceState, router: Router) -> None:
        self.app = app
        self.state = state
        self.router = router
        self.keys = [k.encode() for k in state.settings.api_keys if k]
        self.open_paths = open_paths(state.settings.metrics_open)
        settings = state.settings
        self.max_body = settings.max_body_bytes
        self.body_timeout_s = settings.body_timeout_s
        self.body_budget = BodyBudget(settings.max_inflight_body_bytes, settings.body_wait_s)
        state.body_budget = self.body_budget
        self._templates: list[tuple[Any, str]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        request_id = _request_id(headers.get(b"x-request-id"))
        request_state: dict[str, Any] = scope.setdefault("state", {})
        request_state["request_id"] = request_id
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        # Out of the query string before anything can log or echo it (service/api/url_key.py).
        url_key, scope["query_string"] = take_url_key(path, scope.get("query_string", b""))
        gated = _is_gated(path)
        status = 500
        response_started = False
        error_body: list[bytes] = []

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.body" and status >= 400:
                # Kept for the access log's "error" field (envelopes are small).
                if sum(map(len, error_body)) < _MAX_ERROR_BODY:
                    error_body.append(message.get("body", b""))
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                extra = [
                    (b"x-request-id", request_id.encode()),
                    (
                        b"x-process-time-ms",
                        f"{(time.perf_counter() - started) * 1000:.1f}".encode(),
                    ),
                ]
                timing = request_state.get("timing")
                if timing is not None:
                    extra.append((b"x-queue-time-ms", f"{timing.queue_ms:.1f}".encode()))
                    extra.append((b"x-inference-time-ms", f"{timing.inference_ms:.1f}".encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        counted = False
        try:
            if self.keys and not (path in self.open_paths or path.startswith(OPEN_PREFIXES)):
                if not bearer_ok(headers.get(b"authorization"), self.keys) and not (
                    url_key is not None and bearer_ok(b"Bearer " + url_key, self.keys)
                ):
                    also = " or ?key=<key> in the URL" if path in URL_KEY_PATHS else ""
                    raise EarlyResponse(
                        401,
                        f"missing or invalid bearer token (send Authorization: Bearer <key>{also})",
                        **{"www-authenticate": "Bearer"},
                    )
            if gated and self.state.draining:
                raise EarlyResponse(
                    503, "the server is draining; retry on another replica", connection="close"
                )
            if gated and not self.state.ready:
                raise EarlyResponse(503, "the server is not ready yet", **{"retry-after": "1"})
            if gated:
                self.state.request_started()
                counted = True
            receive, has_body = await self._buffer_body(headers, receive, request_state)
            if (
                has_body
                and method in _BODY_METHODS
                and not is_json_content_type(headers.get(b"content-type"))
                and self._match(scope)[1]
            ):
                sent = headers.get(b"content-type", b"").decode("latin-1")
                raise EarlyResponse(
                    415,
                    "the request body must be JSON sent with Content-Type: application/json "
                    + (f"(got Content-Type: {sent})" if sent else "(no Content-Type was sent)"),
                )
            await self.app(scope, receive, send_wrapper)
        except EarlyResponse as early:
            await self._send_error(
                send_wrapper, early.status, early.message, early.param, early.headers, early.type
            )
        except asyncio.CancelledError:
            # uvicorn cancels what is still running when the drain timeout has passed: answer
            # the documented 503 (the client retries elsewhere) instead of a plain-text 500.
            # A sample id makes that retry safe even if the store already committed it.
            if not response_started:
                await self._send_error(
                    send_wrapper,
                    503,
                    "the server is shutting down and could not finish this request; retry it "
                    "(on another replica)",
                    None,
                    {"connection": "close", "retry-after": "1"},
                )
        except Exception as exc:
            error_log.error(
                "unhandled error on %s %s (request id %s)", method, path, request_id, exc_info=exc
            )
            if not response_started:
                await self._send_error(send_wrapper, 500, "internal server error", None, {})
        finally:
            if counted:
                self.state.request_finished()
            if status >= 400 and "error" not in request_state:
                request_state["error"] = _envelope_type(b"".join(error_body), status)
            if status >= 400:
                log_refused(
                    method,
                    path,
                    scope["query_string"],
                    status,
                    b"".join(error_body),
                    request_state,
                    request_id,
                )
            self._record(scope, method, path, status, started, request_id, request_state)
            self.body_budget.release(request_state.pop("body_reserved", 0))
            request_state.pop("json_body", None)
            watcher = request_state.pop("disconnect_watcher", None)
            if watcher is not None:
                watcher.cancel()
            token = request_state.pop("client_gone_token", None)
            if token is not None:
                CLIENT_GONE.reset(token)

    async def _buffer_body(
        self, headers: dict[bytes, bytes], receive: Receive, request_state: dict[str, Any]
    ) -> tuple[Receive, bool]:
        """Read the whole body within the limits (``sigreward.api.bodies``), parse a JSON body
        in a worker thread (``sigreward.api.jsonbody``) and replay the body to the app; also
        whether the body was non-empty. The parsed document goes to the route in
        ``request_state["json_body"]`` so the event loop never parses a large body."""
        length = headers.get(b"content-length")
        declared: int | None = None
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise EarlyResponse(400, "invalid Content-Length header") from None
        reader = BodyReader(self.body_budget, self.max_body, self.body_timeout_s)
        try:
            first = await reader.read(declared, receive)
        finally:
            # Released by __call__ once the request is answered (its parsed body lives until).
            request_state["body_reserved"] = reader.reserved
        body = first.get("body", b"") if first["type"] == "http.request" else b""
        if body and is_json_content_type(headers.get(b"content-type")):
            document, problem = await self.state.json_parser.run(inspect_body, body)
            if problem is not None:
                raise EarlyResponse(
                    problem.status, problem.message, problem.param, type=problem.type
                )
            if document is not UNPARSED:
                request_state["json_body"] = document
        # One task reads the connection from now on and resolves CLIENT_GONE when the client
        # disconnects (the batcher drops its queued work); the app sees the same disconnect.
        gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if first["type"] != "http.request":
            gone.set_result(None)
        else:
            request_state["disconnect_watcher"] = asyncio.create_task(
                _watch_disconnect(receive, gone)
            )
        request_state["client_gone_token"] = CLIENT_GONE.set(gone)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            await asyncio.shield(gone)
            return {"type": "http.disconnect"}

        return replay, bool(body)

    @staticmethod
    async def _send_error(
        send: Send,
        status: int,
        message: str,
        param: str | None,
        headers: dict[str, str],
        type: str | None = None,
    ) -> None:
        body = json.dumps(envelope(status, message, param, type)).encode()
        raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *[(k.encode(), v.encode()) for k, v in headers.items()],
        ]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _match(self, scope: Scope) -> tuple[str, bool]:
        """(template of the route ``scope`` matches, whether the method matches too).

        A full match wins, else the first route with the path but another method (405);
        no route gives "unmatched", so the metrics' label cardinality stays bounded."""
        if self._templates is None:
            # Built on first use: every router is included by the time requests arrive.
            self._templates = _route_templates(self.router.routes)
        probe = {**scope, "path_params": {}}
        partial: str | None = None
        for matcher, template in self._templates:
            try:
                match, _ = matcher.matches(probe)
            except Exception:  # noqa: BLE001 - a path a converter rejects matches nothing
                continue
            if match == Match.FULL:
                return template, True
            if match == Match.PARTIAL and partial is None:
                partial = template
        return partial or UNMATCHED, False

    def _endpoint(self, scope: Scope) -> str:
        return self._match(scope)[0]

    def _record(
        self,
        scope: Scope,
        method: str,
        path: str,
        status: int,
        started: float,
        request_id: str,
        request_state: dict[str, Any],
    ) -> None:
        elapsed = time.perf_counter() - started
        endpoint = self._endpoint(scope)
        metrics = self.state.metrics
        metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
        metrics.request_duration.labels(endpoint=endpoint).observe(elapsed)
        if path in ("/livez", "/readyz", "/metrics") and status < 400:
            return  # probes and scrapes would drown the log
        fields: dict[str, Any] = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
            "request_id": request_id,
        }
        for name in ("run_id", "step", "samples", "error"):
            if name in request_state:
                fields[name] = request_state[name]
        if "logged_texts" in request_state:
            fields["responses"] = request_state["logged_texts"]
        access_log.info("request", extra={"fields": fields})
