"""Bearer authentication: which paths are open, the constant-time key check, and the 401.

On ``URL_KEY_PATHS`` the key may come as ``?key=`` instead (``sigreward.api.url_key``); it is
taken out of the query string before anything can log or echo it, whether or not keys are set.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.types import Scope

from sigreward.api.errors import ApiError
from sigreward.api.url_key import URL_KEY_PATHS, take_url_key
from sigreward.settings import Settings

# Open without a bearer token: probes, the static web page, and the API's own documentation
# pages (a browser cannot send a bearer token to open them). /metrics names runs: it is open
# only when no keys are set or the operator opens it (metrics_open).
OPEN_PATHS = frozenset(
    {"/livez", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
METRICS_PATH = "/metrics"
OPEN_PREFIXES = ("/ui",)


def open_paths(metrics_open: bool) -> frozenset[str]:
    """The paths served without a bearer token when API keys are set."""
    return OPEN_PATHS | {METRICS_PATH} if metrics_open else OPEN_PATHS


def bearer_ok(authorization: bytes | None, keys: Iterable[bytes]) -> bool:
    """Constant-time check of ``Authorization: Bearer <token>`` against every configured key."""
    if not authorization:
        return False
    scheme, _, token = authorization.partition(b" ")
    if scheme.lower() != b"bearer" or not token:
        return False
    token = token.strip()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token, key)
    return matched


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.keys = [k.encode() for k in settings.api_keys if k]
        self.open_paths = open_paths(settings.metrics_open)

    def check(self, scope: Scope, headers: dict[bytes, bytes]) -> None:
        """Take the URL key out of ``scope``'s query string, then raise the 401 when keys are
        set, the path is not open and neither the header nor the URL key matches one."""
        path: str = scope.get("path", "")
        url_key, scope["query_string"] = take_url_key(path, scope.get("query_string", b""))
        if not self.keys or path in self.open_paths or path.startswith(OPEN_PREFIXES):
            return
        if bearer_ok(headers.get(b"authorization"), self.keys):
            return
        if url_key is not None and bearer_ok(b"Bearer " + url_key, self.keys):
            return
        also = " or ?key=<key> in the URL" if path in URL_KEY_PATHS else ""
        raise ApiError(
            401,
            f"missing or invalid bearer token (send Authorization: Bearer <key>{also})",
            headers={"www-authenticate": "Bearer"},
        )
