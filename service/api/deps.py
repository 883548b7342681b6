"""Shared helpers of the routers: the app's state, run-id path parameter, error mapping."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Path, Request

from sigreward.api.errors import ApiError
from sigreward.api.protocol import RUN_ID_SCHEMA
from sigreward.api.state import ServiceState
from sigreward.batching import BatcherClosed, ClientGone, JobTooLarge, QueueFull
from sigreward.domain.errors import RequestError, RunConflict, RunNotFound, TooLarge
from sigreward.store import StoreUnavailable

T = TypeVar("T")

RunIdPath = Annotated[str, Path(**RUN_ID_SCHEMA)]


def service_state(request: Request) -> ServiceState:
    return request.app.state.service  # type: ignore[no-any-return]


def runs_of(request: Request) -> Any:
    state = service_state(request)
    if state.runs is None:
        raise ApiError(503, "the server is not ready yet")
    return state.runs


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking call (store transaction, verifier) off the event loop, mapping the
    domain's exceptions to the error envelope."""
    try:
        return await asyncio.to_thread(fn, *args)
    except Exception as exc:
        raise domain_error(exc) from exc


# Seconds a client is asked to wait while the store is unreachable (a restart takes seconds).
STORE_RETRY_AFTER_S = 2


def store_unavailable(exc: Exception) -> ApiError:
    """503 with Retry-After: the database is down or restarting; nothing was committed."""
    return ApiError(
        503,
        f"the run store is unavailable ({exc}); retry the request",
        headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
    )


def domain_error(exc: Exception) -> Exception:
    """The ApiError for a domain or batcher exception; other exceptions pass through (500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RunNotFound):
        return ApiError(404, str(exc), param="run_id")
    if isinstance(exc, RunConflict):
        return ApiError(409, str(exc), param=exc.fields[0] if exc.fields else None)
    if isinstance(exc, StoreUnavailable):
        return store_unavailable(exc)
    if isinstance(exc, TooLarge):
        return ApiError(413, str(exc), param=exc.param)
    if isinstance(exc, RequestError):
        return ApiError(422, str(exc), param=exc.param)
    if isinstance(exc, QueueFull):
        return ApiError(
            429,
            f"{exc}; retry after {exc.retry_after_s} s",
            headers={"Retry-After": str(exc.retry_after_s)},
        )
    if isinstance(exc, JobTooLarge):
        return ApiError(413, str(exc), param="samples")
    if isinstance(exc, ClientGone):
        # Nobody reads this answer; 499 (as nginx logs it) keeps it apart in metrics and logs.
        return ApiError(499, str(exc), type="client_closed_request")
    if isinstance(exc, BatcherClosed):
        return ApiError(503, str(exc), headers={"Connection": "close"})
    return exc
