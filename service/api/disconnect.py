"""Replays a request's already read body to the app, and from then on lets one task read the
connection: when the client disconnects, ``CLIENT_GONE`` resolves (the batcher drops the
request's queued work) and the app sees the same disconnect."""

from __future__ import annotations

import asyncio
import contextvars

from starlette.types import Message, Receive

from sigreward.batching import CLIENT_GONE


async def _watch(receive: Receive, gone: asyncio.Future[None]) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not gone.done():
                gone.set_result(None)
            return


class DisconnectWatch:
    def __init__(self, first: Message, receive: Receive) -> None:
        """``first``: the whole body as one message, or the disconnect that came instead."""
        self._first = first
        self._replayed = False
        self._gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None
        if first["type"] != "http.request":
            self._gone.set_result(None)
        else:
            self._task = asyncio.create_task(_watch(receive, self._gone))
        self._token: contextvars.Token[asyncio.Future[None] | None] = CLIENT_GONE.set(self._gone)

    async def receive(self) -> Message:
        if not self._replayed:
            self._replayed = True
            return self._first
        await asyncio.shield(self._gone)
        return {"type": "http.disconnect"}

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        CLIENT_GONE.reset(self._token)
