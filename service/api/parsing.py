"""One worker thread that parses and validates request bodies for an app.

Parsing a large JSON body is one long call into C (json, pydantic-core) that holds the GIL
throughout; several such calls in parallel threads would take turns with each other and starve
the event loop for seconds. One thread keeps at most one of them running, so the event loop
(probes included) waits at most for the one body being parsed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class JsonParser:
    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sigreward-json")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
