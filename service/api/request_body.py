"""One request's body as the app sees it: read whole within the limits
(``sigreward.api.bodies``), a JSON body checked and parsed in the parse thread
(``sigreward.api.jsonbody``: 400 invalid_json, 422 for NaN or a lone surrogate), then replayed
to the app while a watcher reads the connection (``sigreward.api.disconnect``).

The parsed document goes to the route in the request context, so the event loop never parses a
large body; the bytes stay reserved in the body budget until ``close`` (the request answered).
"""

from __future__ import annotations

from starlette.types import Receive

from sigreward.api.bodies import BodyReader, is_json_content_type
from sigreward.api.context import RequestContext
from sigreward.api.disconnect import DisconnectWatch
from sigreward.api.errors import ApiError
from sigreward.api.jsonbody import inspect_body
from sigreward.api.state import ServiceState


def _declared_length(headers: dict[bytes, bytes]) -> int | None:
    length = headers.get(b"content-length")
    if length is None:
        return None
    try:
        return int(length)
    except ValueError:
        raise ApiError(400, "invalid Content-Length header") from None


class RequestBody:
    def __init__(self, state: ServiceState) -> None:
        settings = state.settings
        self._reader = BodyReader(
            state.body_budget, settings.max_body_bytes, settings.body_timeout_s
        )
        self._parser = state.json_parser
        self._watch: DisconnectWatch | None = None
        self.non_empty = False

    async def read(
        self, headers: dict[bytes, bytes], receive: Receive, context: RequestContext
    ) -> Receive:
        """Read and check the body; the receive callable that replays it to the app."""
        first = await self._reader.read(_declared_length(headers), receive)
        body = first.get("body", b"") if first["type"] == "http.request" else b""
        if body and is_json_content_type(headers.get(b"content-type")):
            document, problem = await self._parser.run(inspect_body, body)
            if problem is not None:
                raise ApiError(problem.status, problem.message, problem.param, problem.type)
            context.json_body = document
        self.non_empty = bool(body)
        self._watch = DisconnectWatch(first, receive)
        return self._watch.receive

    def close(self) -> None:
        """Give back the body's bytes to the budget and stop watching the connection."""
        self._reader.budget.release(self._reader.reserved)
        if self._watch is not None:
            self._watch.stop()
