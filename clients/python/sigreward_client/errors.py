"""Exceptions raised by the client."""

from __future__ import annotations

from typing import Any


class SigrewardError(Exception):
    """Base class of every error this package raises."""


class APIError(SigrewardError):
    """The server answered with an error status; carries its envelope
    ``{"error": {"type", "message", "param"}}`` (or the raw body when it was not one)."""

    def __init__(
        self,
        status_code: int,
        type: str,
        message: str,
        param: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        self.status_code = status_code
        self.type = type
        self.message = message
        self.param = param
        self.body = body
        self.retry_after = retry_after
        where = f" (param: {param})" if param else ""
        super().__init__(f"HTTP {status_code} {type}: {message}{where}")

    @classmethod
    def from_response(
        cls, status_code: int, body: Any, retry_after: float | None = None
    ) -> APIError:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return cls(
                status_code,
                str(error.get("type") or "error"),
                str(error.get("message") or ""),
                error.get("param") if isinstance(error.get("param"), str) else None,
                body,
                retry_after,
            )
        text = body if isinstance(body, str) else repr(body)
        return cls(status_code, "http_error", text[:500], None, body, retry_after)


class ConnectionFailed(SigrewardError):
    """The server could not be reached (after all retries)."""


class BatchTooLarge(SigrewardError):
    """A batch cannot be split under the server's limits without breaking a prompt's group."""
