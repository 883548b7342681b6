"""The one error envelope of api.md: ``{"error": {"type", "message", "param"}}`` for every 4xx/5xx."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

# Envelope "type" per status code, for errors raised without an explicit type.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "queue_full",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(HTTPException):
    """An error answered with the envelope. Subclasses FastAPI's HTTPException so that FastAPI's
    body parsing re-raises it unchanged instead of turning it into a generic 400."""

    def __init__(
        self,
        status_code: int,
        message: str,
        param: str | None = None,
        type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status_code, detail=message, headers=dict(headers or {}))
        self.message = message
        self.param = param
        self.type = type or ERROR_TYPES.get(status_code, "error")

    def envelope(self) -> dict[str, Any]:
        return envelope(self.status_code, self.message, self.param, self.type)


def envelope(
    status_code: int, message: str, param: str | None = None, type: str | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "type": type or ERROR_TYPES.get(status_code, "error"),
            "message": message,
            "param": param,
        }
    }


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.envelope(), status_code=error.status_code, headers=error.headers)


def loc_to_param(loc: Sequence[str | int]) -> str | None:
    """("body", "samples", 3, "correct") -> "samples[3].correct"; path/query locs keep their name."""
    parts = list(loc)
    if parts and parts[0] in ("body", "path", "query", "header"):
        parts = parts[1:]
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or None


def _validation_message(err: Mapping[str, Any], param: str | None) -> str:
    msg = str(err.get("msg", "invalid value"))
    if err.get("type") == "missing":
        msg = "field required"
    # pydantic prefixes messages of custom validators with "Value error, ".
    msg = msg.removeprefix("Value error, ")
    return f"{param}: {msg}" if param and not msg.startswith(f"{param}:") else msg


def _error_param(err: Mapping[str, Any]) -> str | None:
    """The field a validation error names: its location, or, for a validator that checks a
    nested entry (``reward_params.alpha``), the ``param`` its exception carries."""
    cause = (err.get("ctx") or {}).get("error")
    named = getattr(cause, "param", None)
    if isinstance(named, str):
        return named
    return loc_to_param(err.get("loc", ()))


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if errors and errors[0].get("type") == "json_invalid":
        ctx = errors[0].get("ctx") or {}
        position = errors[0].get("loc", ("body", None))[-1]
        return error_response(
            ApiError(
                400,
                f"malformed JSON body: {ctx.get('error', 'decode error')} (at character {position})",
                type="invalid_json",
            )
        )
    first = errors[0] if errors else {"msg": "invalid request", "loc": ()}
    param = _error_param(first)
    message = _validation_message(first, param)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error(s))"
    return error_response(ApiError(422, message, param))


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, ApiError):
        return error_response(exc)
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(ApiError(exc.status_code, message, headers=exc.headers))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
