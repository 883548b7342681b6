"""The page's routes on a live server: /ui and its assets are open, GET /v1/runs is not."""

from __future__ import annotations

from typing import Any

from tests.ui.driving import auth_headers


def test_ui_routes_and_run_list(server_factory: Any) -> None:
    key = "routes-key"
    server = server_factory(args=["--api-key", key])

    status, headers, body = server.request_full("GET", "/ui")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "/ui/static/app.js" in body
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    for asset, kind in (
        ("app.js", "text/javascript"),
        ("reward.js", "text/javascript"),
        ("style.css", "text/css"),
        ("vendor/uplot/uPlot.iife.min.js", "text/javascript"),
        ("vendor/uplot/uPlot.min.css", "text/css"),
    ):
        status, headers, _ = server.request_full("GET", f"/ui/static/{asset}")
        assert status == 200, asset
        assert headers["content-type"].startswith(kind), (asset, headers["content-type"])
    for bad in (
        "missing.js",
        "../../service/settings.py",
        "%2e%2e/%2e%2e/pyproject.toml",
        "vendor",
    ):
        status, body = server.request("GET", f"/ui/static/{bad}")
        assert status == 404, bad
        assert body["error"]["type"] == "not_found", bad

    assert server.request("GET", "/v1/runs")[0] == 401
    status, body = server.request("GET", "/v1/runs", headers=auth_headers(key))
    assert (status, body) == (200, {"runs": []})
    for run_id in ("zeta", "alpha.1", "mid-run"):
        put = server.request("PUT", f"/v1/runs/{run_id}", {}, headers=auth_headers(key))
        assert put[0] == 201, put
    status, body = server.request("GET", "/v1/runs", headers=auth_headers(key))
    assert (status, body) == (200, {"runs": ["alpha.1", "mid-run", "zeta"]})
    assert server.request("DELETE", "/v1/runs/mid-run", headers=auth_headers(key))[0] == 204
    status, body = server.request("GET", "/v1/runs", headers=auth_headers(key))
    assert body == {"runs": ["alpha.1", "zeta"]}
