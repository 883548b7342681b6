"""API keys in the URL, for trainers that cannot send headers (OpenRLHF's ``--remote_rm_url``).

Accepted on ``URL_KEY_PATHS`` only, as the query parameter ``key``. The middleware takes it out
of the request's query string before anything else sees the request, so no handler, validation
error, access-log line or metric label can ever contain it; ``redact`` hides it in any URL text
that is logged or shown anyway. The trade-off (a URL ends up in the trainer's own logs and in
shell history) is in docs/integrations.md.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

URL_KEY_PARAM = "key"
URL_KEY_PATHS = frozenset({"/get_reward"})
REDACTED = "REDACTED"

_KEY_IN_URL = re.compile(r"([?&]key=)[^&#\s'\"]*", re.IGNORECASE)


def take_url_key(path: str, query_string: bytes) -> tuple[bytes | None, bytes]:
    """(the key, the query string without it). Only on ``URL_KEY_PATHS``; elsewhere the query
    string is returned unchanged and the key is None (a key there is not accepted)."""
    if path not in URL_KEY_PATHS or not query_string:
        return None, query_string
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    keys = [value for name, value in pairs if name == URL_KEY_PARAM]
    if not keys:
        return None, query_string
    rest = [(name, value) for name, value in pairs if name != URL_KEY_PARAM]
    return keys[-1].encode("latin-1"), urlencode(rest).encode("latin-1")


def redact(text: str) -> str:
    """``text`` with the value of every ``key=`` query parameter replaced by REDACTED."""
    return _KEY_IN_URL.sub(lambda m: m.group(1) + REDACTED, text)
