"""One warning log line per refused request (status >= 400) with its message and run id.

Trainers often hide the server's answer (OpenRLHF logs only ``422, message='Unprocessable
Entity'`` and retries), so the operator's log is where the reason must be visible.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs

from sigreward.api.url_key import redact

log = logging.getLogger("sigreward.refused")

_RUN_PATH_PREFIX = "/v1/runs/"


def run_id_of(path: str, query_string: bytes, named: str | None) -> str | None:
    """The run a request names: ``named`` by its route, or in ``?run_id=``, or in
    /v1/runs/{id}."""
    if named:
        return named
    found = parse_qs(query_string.decode("latin-1")).get("run_id")
    if found:
        return found[-1]
    if path.startswith(_RUN_PATH_PREFIX):
        return path[len(_RUN_PATH_PREFIX) :].split("/", 1)[0] or None
    return None


def log_refused(
    method: str,
    path: str,
    query_string: bytes,
    status: int,
    body: bytes,
    run_id: str | None,
    request_id: str,
) -> None:
    """Log the envelope's message of an error answer (4xx and 5xx) at warning level."""
    try:
        error = json.loads(body)["error"]
        message, param, kind = str(error["message"]), error.get("param"), error.get("type")
    except (ValueError, TypeError, KeyError):
        message, param, kind = body[:500].decode(errors="replace"), None, None
    fields = {
        "method": method,
        "path": path,
        "status": status,
        "error": kind,
        "param": param,
        "run_id": run_id_of(path, query_string, run_id),
        "request_id": request_id,
    }
    log.warning(
        "refused %s %s (%d): %s",
        method,
        path,
        status,
        redact(message),
        extra={"fields": fields},
    )
