"""An answer the middleware gives before (or instead of) the route: raised, then sent as the
error envelope by ``ServiceMiddleware``."""

from __future__ import annotations


class EarlyResponse(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        type: str | None = None,
        **headers: str,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.type = type
        self.headers = headers
