"""Strict JSON bodies, parsed once per request (in a worker thread, see the middleware).

Python's json accepts NaN / Infinity and lone UTF-16 surrogates ("\\ud800"), JSON text used as
Unicode does not: both are refused with 422 naming the field, in every text field of every
route (one rule: text must be valid Unicode). Bodies that are not JSON at all (gzip, another
encoding, nesting deeper than the parser goes) are 400 ``invalid_json``. The parsed document is
handed to the route so the body is never parsed twice.

Large clean bodies (no NaN / Infinity token, no surrogate escape, valid UTF-8) are not parsed
here at all: routes of ``sigreward.api.jsonroute`` validate their bytes straight into the request
model (pydantic's JSON parser, without an intermediate document: about half the time and
memory of parsing, then validating).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_NON_FINITE_TOKENS = (b"NaN", b"Infinity")
# A \uD800-\uDFFF escape; pairs are joined by the parser, only lone halves survive it.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _NonFinite:
    def __init__(self, token: str) -> None:
        self.token = token


@dataclass(frozen=True)
class BodyProblem:
    """Why a JSON body is refused: status 400 (not JSON) or 422 (a bad value at ``param``)."""

    status: int
    message: str
    param: str | None = None
    type: str | None = None


def _walk(document: Any, check_text: bool) -> BodyProblem | None:
    """The first NaN/Infinity constant or lone surrogate, iteratively (no recursion limit)."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, _NonFinite):
            prefix = f"{path}: " if path else ""
            return BodyProblem(
                422,
                f"{prefix}{value.token} is not a valid JSON number (values must be finite)",
                path or None,
            )
        if isinstance(value, str):
            if check_text and _LONE_SURROGATE.search(value):
                return _surrogate_problem(path, value)
        elif isinstance(value, dict):
            items = list(value.items())
            for key, item in reversed(items):
                child = f"{path}.{key}" if path else str(key)
                if check_text and _LONE_SURROGATE.search(key):
                    return _surrogate_problem(child, key)
                stack.append((child, item))
        elif isinstance(value, list):
            for i in range(len(value) - 1, -1, -1):
                stack.append((f"{path}[{i}]", value[i]))
    return None


def _surrogate_problem(path: str, text: str) -> BodyProblem:
    match = _LONE_SURROGATE.search(text)
    assert match is not None
    code = f"\\u{ord(match.group()):04x}"
    prefix = f"{path}: " if path else ""
    return BodyProblem(
        422,
        f"{prefix}contains a lone UTF-16 surrogate ({code}) at character {match.start()}, "
        "which is not valid Unicode; send text as valid UTF-8 (e.g. U+FFFD for broken bytes)",
        path or None,
    )


# Bodies up to this size are parsed here in full (cheap); larger ones only when suspicious.
SMALL_BODY_BYTES = 256 * 1024
# Marks a large clean body left for the route to parse.
UNPARSED = object()


def inspect_body(body: bytes) -> tuple[Any, BodyProblem | None]:
    """Like ``parse_body``, except that a large body with nothing to refuse in it is returned
    as ``UNPARSED`` (after a UTF-8 check) for the route to parse. Call it in a worker thread."""
    if len(body) <= SMALL_BODY_BYTES:
        return parse_body(body)
    if any(token in body for token in _NON_FINITE_TOKENS) or _SURROGATE_ESCAPE.search(body):
        return parse_body(body)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return parse_body(body)  # answers invalid_json with the position
    return UNPARSED, None


def parse_body(body: bytes) -> tuple[Any, BodyProblem | None]:
    """(document, None) for an acceptable JSON body, else (None, the problem).

    CPU-bound on large bodies: call it from a worker thread.
    """
    found_non_finite = any(token in body for token in _NON_FINITE_TOKENS)
    seen: list[_NonFinite] = []

    def constant(token: str) -> _NonFinite:
        marker = _NonFinite(token)
        seen.append(marker)
        return marker

    try:
        text = body.decode("utf-8")
        document = json.loads(text, parse_constant=constant if found_non_finite else None)
    except UnicodeDecodeError as exc:
        return None, BodyProblem(
            400,
            f"malformed JSON body: not UTF-8 text (byte {exc.start}); compressed bodies "
            "(Content-Encoding) are not accepted",
            type="invalid_json",
        )
    except json.JSONDecodeError as exc:
        return None, BodyProblem(
            400, f"malformed JSON body: {exc.msg} (at character {exc.pos})", type="invalid_json"
        )
    except RecursionError:
        return None, BodyProblem(
            400, "malformed JSON body: nested too deeply to parse", type="invalid_json"
        )
    check_text = _SURROGATE_ESCAPE.search(body) is not None
    if seen or check_text:
        problem = _walk(document, check_text)
        if problem is not None:
            return None, problem
    return document, None
