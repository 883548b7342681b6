"""What one request carries between the middleware and its route: ``RequestContext``.

The middleware creates it for every HTTP request and keeps it in the ASGI scope; a route fills
in what it learnt (run, step, sample count, timing of the batcher) with
``context_of(request).run_id = ...``, and the middleware reads it back for the timing headers,
metrics, the access-log line and the log line of a refused request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.types import Scope

from sigreward.api.jsonbody import UNPARSED
from sigreward.batching import Timing

# The context's one key in the scope's per-request state (``scope["state"]``).
_SCOPE_KEY = "sigreward.context"
_MAX_REQUEST_ID = 128


@dataclass
class RequestContext:
    request_id: str
    run_id: str | None = None
    step: int | None = None
    samples: int | None = None
    # The response texts, for the access log when the operator asked for them (log_responses).
    logged_texts: list[str] | None = None
    timing: Timing | None = None
    # The body the middleware parsed in the parse thread, for the route (``jsonroute``).
    json_body: Any = UNPARSED

    def take_json_body(self) -> Any:
        """The parsed body, or UNPARSED; taken once, so it is garbage once validated."""
        document, self.json_body = self.json_body, UNPARSED
        return document


def request_id_from(header: bytes | None) -> str:
    """The client's X-Request-Id when it is short printable ASCII, else a new random id."""
    if header:
        text = header.decode("latin-1")
        if len(text) <= _MAX_REQUEST_ID and text.isprintable() and text.isascii():
            return text
    return uuid.uuid4().hex


def attach_context(scope: Scope, request_id: str) -> RequestContext:
    context = RequestContext(request_id)
    scope.setdefault("state", {})[_SCOPE_KEY] = context
    return context


def context_of(request: Request) -> RequestContext:
    """The request's context (every HTTP request passes the middleware that attaches it)."""
    context: RequestContext = request.scope["state"][_SCOPE_KEY]
    return context
