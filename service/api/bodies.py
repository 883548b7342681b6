"""Reading request bodies within limits: the per-request size (413 as soon as the bytes pass
it), the memory all bodies in flight may hold together (wait briefly, then 429), and a read
timeout between chunks (408, so a client that stops sending cannot hold a slot forever); and
the JSON content type every body sent to a route must have (415).

A parsed JSON body takes several times its size in memory, and it lives until its request is
answered, so the budget is held from the first byte until the request finishes.
"""

from __future__ import annotations

import asyncio
import email.message
import math
import time

from starlette.types import Message, Receive

from sigreward.api.errors import ApiError

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


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


def content_type_refusal(
    method: str, content_type: bytes | None, has_body: bool
) -> ApiError | None:
    """The 415 for a non-empty body of POST / PUT / PATCH that is not sent as JSON (the caller
    raises it when the request goes to a route)."""
    if not has_body or method not in _BODY_METHODS or is_json_content_type(content_type):
        return None
    sent = (content_type or b"").decode("latin-1")
    return ApiError(
        415,
        "the request body must be JSON sent with Content-Type: application/json "
        + (f"(got Content-Type: {sent})" if sent else "(no Content-Type was sent)"),
    )


class BodyBudget:
    """Bytes of request bodies in flight, bounded by ``limit``.

    ``reserve`` waits up to a deadline for room; a single body larger than the whole budget
    waits until it is alone. Only the event loop calls these methods, so plain counters do.
    """

    def __init__(self, limit: int, wait_s: float) -> None:
        self.limit = max(1, limit)
        self.wait_s = max(0.0, wait_s)
        self.used = 0
        self._waiters: list[asyncio.Future[None]] = []

    def _fits(self, n: int) -> bool:
        return self.used == 0 or self.used + n <= self.limit

    async def reserve(self, n: int, deadline: float) -> bool:
        """Take ``n`` bytes; False when there was no room before ``deadline`` (monotonic)."""
        if n <= 0:
            return True
        loop = asyncio.get_running_loop()
        while not self._fits(n):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.used += n
        return True

    def release(self, n: int) -> None:
        """Give back ``n`` bytes and wake every waiter to re-check (no await: safe in finally)."""
        if n <= 0:
            return
        self.used = max(0, self.used - n)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


def _busy(budget: BodyBudget) -> ApiError:
    return ApiError(
        429,
        f"the server holds its limit of {budget.limit} bytes of request bodies in flight; "
        "retry shortly",
        type="server_busy",
        # The body was not read: the connection cannot carry another request.
        headers={"connection": "close", "retry-after": str(max(1, math.ceil(budget.wait_s)))},
    )


class BodyReader:
    """Reads one request's body; ``reserved`` is what the caller releases when it finishes."""

    def __init__(self, budget: BodyBudget, max_body: int, chunk_timeout_s: float) -> None:
        self.budget = budget
        self.max_body = max_body
        self.chunk_timeout_s = chunk_timeout_s
        self.reserved = 0

    def _too_large(self, declared: int | None) -> ApiError:
        size = f"request body of {declared} bytes" if declared is not None else "request body"
        return ApiError(
            413,
            f"{size} exceeds the limit of {self.max_body} bytes",
            headers={"connection": "close"},
        )

    async def read(self, declared: int | None, receive: Receive) -> Message:
        """The whole body as one ``http.request`` message, or the disconnect message when the
        client went away. Raises ApiError for 408 / 413 / 429."""
        if declared is not None and declared > self.max_body:
            raise self._too_large(declared)
        deadline = time.monotonic() + self.budget.wait_s
        if declared is not None and not await self.budget.reserve(declared, deadline):
            raise _busy(self.budget)
        self.reserved = declared or 0
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.chunk_timeout_s)
            except TimeoutError:
                raise ApiError(
                    408,
                    f"no part of the request body arrived for {self.chunk_timeout_s:g} s",
                    type="request_timeout",
                    headers={"connection": "close"},
                ) from None
            if message["type"] != "http.request":
                return message  # the client went away
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_body:
                raise self._too_large(None)
            if total > self.reserved:
                # No (or a wrong) Content-Length: reserve as the bytes arrive.
                extra = total - self.reserved
                if not await self.budget.reserve(extra, time.monotonic() + self.budget.wait_s):
                    raise _busy(self.budget)
                self.reserved += extra
            chunks.append(body)
            if not message.get("more_body", False):
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
