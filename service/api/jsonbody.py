"""Strict JSON bodies: Python's json accepts NaN / Infinity, JSON does not (api.md: 422).

The middleware checks every JSON body once, so every router (ours and the adapters') gets the
same rule; the byte search keeps the cost near zero for ordinary bodies.
"""

from __future__ import annotations

import json
from typing import Any

_TOKENS = (b"NaN", b"Infinity")


class _NonFinite:
    def __init__(self, token: str) -> None:
        self.token = token


def _find_non_finite(value: Any, path: str = "") -> tuple[str, str] | None:
    """(param path, token) of the first NaN/Infinity constant in a parsed document."""
    if isinstance(value, _NonFinite):
        return path, value.token
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find_non_finite(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _find_non_finite(item, f"{path}[{i}]")
            if found:
                return found
    return None


def non_finite_error(body: bytes) -> tuple[str | None, str] | None:
    """``(param, message)`` when ``body`` is JSON with a NaN / Infinity number, else None.

    Malformed JSON returns None: the route's own parser answers it (400).
    """
    if not any(token in body for token in _TOKENS):
        return None
    seen: list[_NonFinite] = []

    def constant(token: str) -> _NonFinite:
        marker = _NonFinite(token)
        seen.append(marker)
        return marker

    try:
        document = json.loads(body, parse_constant=constant)
    except (ValueError, RecursionError):
        return None
    if not seen:
        return None
    found = _find_non_finite(document)
    param, token = found if found else ("", seen[0].token)
    prefix = f"{param}: " if param else ""
    return param or None, f"{prefix}{token} is not a valid JSON number (values must be finite)"
