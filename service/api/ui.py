"""The web page (/ui) and its static assets under /ui/static/; its run list is GET /v1/runs.

The page and its assets are open, like /livez: they carry no data. Everything the page shows
comes from the /v1 API, which the page calls with the bearer token the user enters.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response

from sigreward.api.errors import ApiError

STATIC_DIR = Path(__file__).resolve().parent.parent / "ui" / "static"

# Browsers must not sniff types; the page never needs to be framed by another origin.
_ASSET_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
_PAGE_HEADERS = {
    **_ASSET_HEADERS,
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'"
    ),
}
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}

router = APIRouter()


@router.get("/ui", include_in_schema=False)
def ui_page() -> Response:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_PAGE_HEADERS)


@router.get("/ui/", include_in_schema=False)
def ui_page_slash() -> Response:
    return RedirectResponse("/ui", status_code=308)


@router.get("/ui/static/{asset:path}", include_in_schema=False)
def ui_asset(asset: str) -> Response:
    root = STATIC_DIR.resolve()
    path = (root / asset).resolve()
    # Only files inside the static directory: "..", absolute paths and links out are refused.
    if not path.is_relative_to(root) or not path.is_file():
        raise ApiError(404, f"no asset {asset!r}", param="asset")
    media_type = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
    return FileResponse(
        path, media_type=media_type or "application/octet-stream", headers=_ASSET_HEADERS
    )
