"""The one pure-ASGI middleware of the service: what every HTTP request goes through, in order.

1. the request context and its id (``sigreward.api.context``);
2. bearer auth, the ``?key=`` of /get_reward taken out of the URL first (``auth``: 401);
3. the readiness / draining gate and the in-flight count draining waits for (``admission``:
   503);
4. the body read within its limits and its JSON checked in the parse thread
   (``request_body``: 400, 408, 413, 422, 429), then JSON content type of a body sent to a
   route (``bodies``: 415);
5. the app, with the timing headers added to its answer (``observe.Exchange``).

Every answer is then counted in the metrics under its route template, and logged
(``observe.record``). Refusals of steps 2 to 4 are error envelopes; a request cut by the drain
timeout gets a 503 envelope and anything the app lets escape the last-resort 500 envelope.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.routing import Router
from starlette.types import ASGIApp, Receive, Scope, Send

from sigreward.api.admission import admit
from sigreward.api.auth import Authenticator
from sigreward.api.bodies import content_type_refusal
from sigreward.api.context import attach_context, request_id_from
from sigreward.api.errors import ApiError
from sigreward.api.observe import Exchange, record
from sigreward.api.request_body import RequestBody
from sigreward.api.route_templates import RouteTemplates
from sigreward.api.state import ServiceState

error_log = logging.getLogger("sigreward.api")


def _cut_by_shutdown() -> ApiError:
    # uvicorn cancels what is still running when the drain timeout has passed: the documented
    # 503 (the client retries elsewhere) instead of a plain-text 500. A sample id makes that
    # retry safe even if the store already committed it.
    return ApiError(
        503,
        "the server is shutting down and could not finish this request; retry it "
        "(on another replica)",
        headers={"connection": "close", "retry-after": "1"},
    )


class ServiceMiddleware:
    def __init__(self, app: ASGIApp, state: ServiceState, router: Router) -> None:
        self.app = app
        self.state = state
        self.auth = Authenticator(state.settings)
        self.routes = RouteTemplates(router)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        context = attach_context(scope, request_id_from(headers.get(b"x-request-id")))
        exchange = Exchange(scope, context, send)
        body = RequestBody(self.state)
        counted = False
        try:
            self.auth.check(scope, headers)
            counted = admit(self.state, exchange.path)
            replay = await body.read(headers, receive, context)
            refusal = content_type_refusal(
                exchange.method, headers.get(b"content-type"), body.non_empty
            )
            if refusal is not None and self.routes.match(scope)[1]:
                raise refusal
            await self.app(scope, replay, exchange.send)
        except ApiError as refused:
            await exchange.answer(refused)
        except asyncio.CancelledError:
            if not exchange.response_started:
                await exchange.answer(_cut_by_shutdown())
        except Exception as exc:
            error_log.error(
                "unhandled error on %s %s (request id %s)",
                exchange.method,
                exchange.path,
                context.request_id,
                exc_info=exc,
            )
            if not exchange.response_started:
                await exchange.answer(ApiError(500, "internal server error"))
        finally:
            if counted:
                self.state.request_finished()
            endpoint = self.routes.match(scope)[0]
            record(exchange, scope.get("query_string", b""), endpoint, self.state.metrics)
            body.close()
            context.take_json_body()  # a body no route took is garbage now
