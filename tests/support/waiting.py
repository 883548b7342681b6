"""Wait for a condition, never for luck: poll until it holds or a generous deadline passes.

Something another process or thread does (a server's log line, a metric recorded after the
answer was sent, a queue filling up) is observed by polling. The deadline is long because a
loaded 2-core machine can be slow; a condition that holds returns at once, so a passing test
pays nothing for it::

    line = wait_until(lambda: access_line(server, rid), what=f"the access-log line of {rid}")
    text = wait_until(lambda: metrics(server), lambda t: "x 1" in t, what="x counted")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 30.0
_SHOWN_CHARS = 2000


def _shown(value: object) -> str:
    text = repr(value)
    if len(text) <= _SHOWN_CHARS:
        return text
    half = _SHOWN_CHARS // 2
    return f"{text[:half]} ... {text[-half:]}"


def wait_until(
    read: Callable[[], T],
    accept: Callable[[T], object] = bool,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    interval: float = 0.05,
    what: str = "the condition",
) -> T:
    """Call ``read`` until ``accept`` holds for its value (by default: the value is truthy) and
    return that value; after ``timeout`` seconds raise AssertionError naming ``what`` and the
    last value read."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if accept(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what}; last value: {_shown(value)}"
            )
        time.sleep(interval)
