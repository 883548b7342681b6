"""A route class whose JSON body is parsed and validated off the event loop, so a large body
never occupies it: probes and other requests stay fast while it is handled.

The middleware either parsed the body already (small or suspicious bodies: the document is in
the request context) or checked that it is clean UTF-8 and left it. Here the document is
validated against the route's body model, or the raw bytes are validated straight into the
model by pydantic's JSON parser, in the app's parse thread (``sigreward.api.parsing``). FastAPI
then finds the validated model in the request's JSON cache and accepts it as is.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from sigreward.api.bodies import is_json_content_type
from sigreward.api.context import context_of
from sigreward.api.errors import ApiError
from sigreward.api.jsonbody import UNPARSED


def _body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors(include_url=False):
        errors.append({**error, "loc": ("body", *error.get("loc", ()))})
    return errors


class ParsedJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        body_field = self.body_field
        # A body of several embedded parameters is validated field by field by FastAPI.
        embedded = bool(getattr(self, "_embed_body_fields", False))
        adapter: TypeAdapter[Any] | None = None
        if body_field is not None and not embedded:
            adapter = TypeAdapter(body_field.field_info.annotation)

        def validate_raw(raw: bytes) -> Any:
            assert adapter is not None
            try:
                return adapter.validate_json(raw)
            except ValidationError as exc:
                errors = _body_errors(exc)
                if errors and errors[0].get("type") == "json_invalid":
                    detail = errors[0].get("ctx", {}).get("error") or errors[0].get("msg")
                    raise ApiError(
                        400, f"malformed JSON body: {detail}", type="invalid_json"
                    ) from None
                raise RequestValidationError(errors, body=None) from None

        def validate_document(document: Any) -> Any:
            assert adapter is not None
            try:
                return adapter.validate_python(document)
            except ValidationError as exc:
                raise RequestValidationError(_body_errors(exc), body=document) from None

        async def route_handler(request: Request) -> Response:
            if adapter is not None:
                parser = request.app.state.service.json_parser
                # Taken: the document is garbage once validated (memory budget).
                document = context_of(request).take_json_body()
                if document is not UNPARSED:
                    request._json = await parser.run(validate_document, document)
                elif is_json_content_type(request.headers.get("content-type", "").encode()):
                    raw = await request.body()
                    if raw:
                        request._json = await parser.run(validate_raw, raw)
            return await handler(request)

        return route_handler
