"""Operations endpoints: /livez, /readyz, /metrics, /v1/info.

/livez and /readyz also answer HEAD (Kubernetes probes and load balancers use it): the same
status, no body. The HEAD routes stay out of the OpenAPI document."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

import sigreward
from sigreward.api.deps import service_state
from sigreward.api.errors import envelope
from sigreward.api.protocol import HealthResponse, InfoResponse, Limits, error_responses

router = APIRouter(tags=["operations"])


@router.get(
    "/livez", response_model=HealthResponse, summary="Liveness: 200 while the process serves"
)
async def livez() -> HealthResponse:
    return HealthResponse(status="ok")


@router.head("/livez", include_in_schema=False)
async def livez_head() -> Response:
    return Response(status_code=200)


# /readyz gives the store this long to answer SELECT 1.
STORE_PING_TIMEOUT_S = 3.0


async def _ready(request: Request) -> tuple[bool, str]:
    state = service_state(request)
    if not state.ready or state.draining:
        return False, "draining" if state.draining else "warming up"
    if state.store is not None:
        # A replica whose database is down cannot serve: take it out of rotation.
        try:
            await asyncio.wait_for(asyncio.to_thread(state.store.ping), STORE_PING_TIMEOUT_S)
        except TimeoutError:
            return False, f"the run store did not answer within {STORE_PING_TIMEOUT_S:g} s"
        except Exception as exc:  # noqa: BLE001 - any failure to answer means not ready
            return False, f"the run store is unavailable ({exc})"
    return True, "ready"


@router.get(
    "/readyz",
    response_model=HealthResponse,
    responses=error_responses(503),
    summary="Readiness: 200 once the model is warm, the store answers and the server is not "
    "draining",
)
async def readyz(request: Request) -> Response:
    ready, reason = await _ready(request)
    if ready:
        return JSONResponse({"status": "ready"})
    return JSONResponse(envelope(503, f"not ready: {reason}"), status_code=503)


@router.head("/readyz", include_in_schema=False)
async def readyz_head(request: Request) -> Response:
    return Response(status_code=200 if (await _ready(request))[0] else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    state = service_state(request)
    return Response(state.metrics.render(), media_type=state.metrics.content_type)


@router.get("/v1/info", response_model=InfoResponse, responses=error_responses(401))
async def info(request: Request) -> InfoResponse:
    state = service_state(request)
    settings = state.settings
    engine = state.engine
    model = engine if engine is not None and engine.has_model else None
    return InfoResponse(
        version=sigreward.__version__,
        significance_modes=["classifier", "values"] if model is not None else ["values"],
        model=model.model_name if model is not None else None,
        device=engine.device if engine is not None else "cpu",
        dtype=model.dtype if model is not None else None,
        exact=model.dtype == "fp32" if model is not None else None,
        kernel_backend=engine.kernel_backend if engine is not None else "torch",
        store="postgresql" if settings.database_url else "sqlite",
        auth=bool(settings.api_keys),
        ready=state.ready and not state.draining,
        # The limits a client must respect are settings of the same names.
        limits=Limits.model_validate(settings.model_dump(include=set(Limits.model_fields))),
    )
