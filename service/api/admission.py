"""The readiness / draining gate (503) and the in-flight count that draining waits for.

Probes, metrics, the info route, the web page and the API's documentation are answered even
while the server is not ready or is draining; every other request is gated."""

from __future__ import annotations

from sigreward.api.errors import ApiError
from sigreward.api.state import ServiceState

UNGATED_PATHS = frozenset(
    {"/", "/livez", "/readyz", "/metrics", "/v1/info", "/openapi.json", "/docs", "/redoc"}
)
UNGATED_PREFIXES = ("/ui", "/docs/")


def admit(state: ServiceState, path: str) -> bool:
    """Raise the 503 of a draining or not yet ready server for a gated path; otherwise whether
    the request now counts as in flight (the caller calls ``state.request_finished()``)."""
    if path in UNGATED_PATHS or path.startswith(UNGATED_PREFIXES):
        return False
    if state.draining:
        raise ApiError(
            503,
            "the server is draining; retry on another replica",
            headers={"connection": "close"},
        )
    if not state.ready:
        raise ApiError(503, "the server is not ready yet", headers={"retry-after": "1"})
    state.request_started()
    return True
