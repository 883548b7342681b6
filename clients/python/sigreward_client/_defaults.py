"""Defaults read from the environment, so every entry point (clients, TRL, verl) is configured
the same way: ``SIGREWARD_URL``, ``SIGREWARD_RUN_ID``, ``SIGREWARD_API_KEY``,
``SIGREWARD_TIMEOUT`` and ``SIGREWARD_RETRY_BUDGET`` (seconds)."""

from __future__ import annotations

import os

DEFAULT_TIMEOUT = 120.0
# Long enough for a server to restart and load its model (a Kubernetes rolling update).
DEFAULT_RETRY_BUDGET = 120.0


def _text(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _seconds(name: str, default: float) -> float:
    raw = _text(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of seconds") from None
    if value < 0:
        raise ValueError(f"{name}={raw!r} must be >= 0")
    return value


def base_url(given: str | None) -> str:
    url = given or _text("SIGREWARD_URL")
    if not url:
        raise ValueError("base_url: pass it or set SIGREWARD_URL (e.g. http://127.0.0.1:8000)")
    return url


def run_id(given: str | None) -> str:
    run = given or _text("SIGREWARD_RUN_ID")
    if not run:
        raise ValueError("run_id: pass it or set SIGREWARD_RUN_ID")
    return run


def api_key(given: str | None) -> str | None:
    """``given`` when not None ("" sends no key even if SIGREWARD_API_KEY is set)."""
    if given is not None:
        return given or None
    return _text("SIGREWARD_API_KEY")


def timeout(given: float | None) -> float:
    return given if given is not None else _seconds("SIGREWARD_TIMEOUT", DEFAULT_TIMEOUT)


def retry_budget(given: float | None) -> float:
    return given if given is not None else _seconds("SIGREWARD_RETRY_BUDGET", DEFAULT_RETRY_BUDGET)
