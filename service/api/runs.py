"""GET /v1/runs, PUT / GET / DELETE /v1/runs/{run_id} and
POST /v1/runs/{run_id}/steps/{step}/finish."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Request, Response

from sigreward.api.context import context_of
from sigreward.api.deps import RunIdPath, in_thread, runs_of, service_state
from sigreward.api.errors import ApiError
from sigreward.api.jsonroute import ParsedJsonRoute
from sigreward.api.protocol import RunListResponse, RunResponse, error_responses, run_response
from sigreward.domain.run_config import RunConfigPatch
from sigreward.reward.params import RewardParamError

router = APIRouter(prefix="/v1/runs", tags=["runs"], route_class=ParsedJsonRoute)


@router.get(
    "",
    response_model=RunListResponse,
    responses=error_responses(401, 503),
    summary="List the ids of all runs (the web page's run picker)",
)
async def list_runs(request: Request) -> RunListResponse:
    runs = runs_of(request)
    return RunListResponse(runs=sorted(await in_thread(runs.list_runs)))


_PUT_EXAMPLE = {
    "significance": "values",
    "reference": "first_seen",
    "lambda_c": 5.0,
    "slope_start_step": 50,
}


@router.put(
    "/{run_id}",
    response_model=RunResponse,
    status_code=200,
    responses={
        201: {"model": RunResponse, "description": "run created"},
        **error_responses(400, 401, 409, 413, 415, 422, 503),
    },
    summary="Create a run (201) or confirm its configuration (200); 409 when it differs",
)
async def configure(
    request: Request,
    response: Response,
    run_id: RunIdPath,
    patch: Annotated[RunConfigPatch | None, Body(examples=[_PUT_EXAMPLE])] = None,
) -> RunResponse:
    context_of(request).run_id = run_id
    state = service_state(request)
    patch = patch or RunConfigPatch()
    if patch.significance == "classifier" and not state.model_loaded:
        raise ApiError(
            422,
            'significance: "classifier" needs a server started with --model; '
            'this one serves "values" only',
            param="significance",
        )
    runs = runs_of(request)
    try:
        _, created = await in_thread(runs.configure, run_id, patch)
    except RewardParamError as exc:  # e.g. a required one missing, checked on creation
        raise ApiError(422, str(exc), param=exc.param) from exc
    except ValueError as exc:
        raise ApiError(422, str(exc), param=_param_of(str(exc))) from exc
    view = await in_thread(runs.get_run, run_id)
    response.status_code = 201 if created else 200
    return run_response(view)


def _param_of(message: str) -> str | None:
    head = message.split(" ", 1)[0]
    return head if head.replace(".", "").replace("_", "").isalnum() else None


@router.get(
    "/{run_id}",
    response_model=RunResponse,
    responses=error_responses(401, 404, 422, 503),
    summary="A run's configuration, schedule and per-step history",
)
async def get_run(request: Request, run_id: RunIdPath) -> RunResponse:
    context_of(request).run_id = run_id
    view = await in_thread(runs_of(request).get_run, run_id)
    return run_response(view)


@router.delete(
    "/{run_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 404, 422, 503),
    summary="Delete a run and everything it owns",
)
async def delete_run(request: Request, run_id: RunIdPath) -> Response:
    context_of(request).run_id = run_id
    await in_thread(runs_of(request).delete_run, run_id)
    service_state(request).metrics.forget_run(run_id)
    return Response(status_code=204)


@router.post(
    "/{run_id}/steps/{step}/finish",
    response_model=RunResponse,
    responses=error_responses(401, 404, 422, 503),
    summary="Finish every step up to and including `step`; later requests for them are late",
)
async def finish_step(
    request: Request,
    run_id: RunIdPath,
    step: Annotated[int, Path(ge=0, le=2**62, examples=[120])],
) -> RunResponse:
    ctx = context_of(request)
    ctx.run_id = run_id
    ctx.step = step
    state = service_state(request)
    view = await in_thread(runs_of(request).finish_step, run_id, step)
    state.metrics.observe_k(run_id, view.schedule.k)
    return run_response(view)
