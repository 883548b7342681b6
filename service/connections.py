"""Slow clients at the connection level: a header read timeout for uvicorn's HTTP protocol.

uvicorn closes idle keep-alive connections, but a connection that sends nothing, or only part
of its request headers, stays open for as long as the client likes; thousands of them would
hold the server's connection slots (slowloris). The protocol below closes a connection whose
request headers are not complete ``timeout`` seconds after it opened, or after it began a new
request. Body pauses are bounded by the middleware (408), open connections by uvicorn's
``limit_concurrency`` (503 beyond it).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol


def header_timeout_protocol(timeout_s: float, base: type[Any] = AutoHTTPProtocol) -> type[Any]:
    """uvicorn's HTTP protocol class (h11 or httptools) with a header read timeout."""

    class HeaderTimeoutProtocol(base):  # type: ignore[misc, valid-type]
        _header_timer: asyncio.TimerHandle | None = None
        _armed_for: Any = None  # the request cycle current when the timer was armed

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_timer()

        def data_received(self, data: bytes) -> None:
            if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
                # The first bytes of a further request on a kept-alive connection.
                self._arm_header_timer()
            armed_for = self._armed_for
            super().data_received(data)
            if self._header_timer is not None and self.cycle is not armed_for:
                self._disarm_header_timer()  # the headers completed: a request began

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_timer()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            self._disarm_header_timer()
            self._armed_for = self.cycle
            self._header_timer = self.loop.call_later(timeout_s, self._header_deadline)

        def _disarm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_deadline(self) -> None:
            self._header_timer = None
            if self.cycle is self._armed_for:
                # No request began since the timer was armed: its headers never completed.
                self.transport.close()

    HeaderTimeoutProtocol.__name__ = f"HeaderTimeout{base.__name__}"
    return HeaderTimeoutProtocol
