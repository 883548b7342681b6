"""The path template of the route a request matches (``/v1/runs/{run_id}``), for the metrics'
labels (bounded cardinality) and to tell requests to a route from unmatched ones."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.routing import BaseRoute, Match, Router
from starlette.types import Scope

UNMATCHED = "unmatched"


def _route_templates(routes: Iterable[BaseRoute]) -> list[tuple[Any, str]]:
    """(matcher, path template) of every endpoint, in the router's matching order.

    FastAPI >= 0.16x keeps included routers as objects (``effective_route_contexts``) whose
    endpoints have no ``.path`` on the router itself; older versions and plain Starlette
    routes expose ``path`` directly."""
    found: list[tuple[Any, str]] = []
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for context in contexts():
                template = getattr(context, "path", None) or getattr(context, "path_format", "")
                if template:
                    found.append((context, str(template)))
            continue
        template = getattr(route, "path", None)
        if template is not None:
            found.append((route, str(template)))
    return found


class RouteTemplates:
    def __init__(self, router: Router) -> None:
        self.router = router
        self._templates: list[tuple[Any, str]] | None = None

    def match(self, scope: Scope) -> tuple[str, bool]:
        """(template of the route ``scope`` matches, whether the method matches too).

        A full match wins, else the first route with the path but another method (405);
        no route gives "unmatched", so the metrics' label cardinality stays bounded."""
        if self._templates is None:
            # Built on first use: every router is included by the time requests arrive.
            self._templates = _route_templates(self.router.routes)
        probe = {**scope, "path_params": {}}
        partial: str | None = None
        for matcher, template in self._templates:
            try:
                match, _ = matcher.matches(probe)
            except Exception:  # noqa: BLE001 - a path a converter rejects matches nothing
                continue
            if match == Match.FULL:
                return template, True
            if match == Match.PARTIAL and partial is None:
                partial = template
        return partial or UNMATCHED, False
