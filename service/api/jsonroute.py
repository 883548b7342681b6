"""A route class that takes the JSON body the middleware already parsed (in a worker thread)
and validates it against the route's body model in a worker thread too, so a large body never
occupies the event loop: probes and other requests stay fast while it is handled.

FastAPI then finds the validated model in the request's JSON cache and accepts it as is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

_MISSING = object()


class ParsedJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        body_field = self.body_field
        # A body of several embedded parameters is validated field by field by FastAPI.
        embedded = bool(getattr(self, "_embed_body_fields", False))

        async def route_handler(request: Request) -> Response:
            document = request.scope.get("state", {}).get("json_body", _MISSING)
            if document is not _MISSING and body_field is not None and not embedded:
                value, errors = await asyncio.to_thread(
                    body_field.validate, document, {}, loc=("body",)
                )
                if errors:
                    raise RequestValidationError(errors, body=document)
                request._json = value  # Starlette's cache of request.json()
            return await handler(request)

        return route_handler
