"""POST /v1/rewards."""

from __future__ import annotations

from fastapi import APIRouter, Request

from sigreward.api import scoring
from sigreward.api.context import context_of
from sigreward.api.deps import service_state
from sigreward.api.jsonroute import ParsedJsonRoute
from sigreward.api.protocol import (
    RewardsRequest,
    RewardsResponse,
    SampleReward,
    ScheduleOut,
    error_responses,
)
from sigreward.batching import Timing

router = APIRouter(tags=["rewards"], route_class=ParsedJsonRoute)


@router.post(
    "/v1/rewards",
    response_model=RewardsResponse,
    responses=error_responses(400, 401, 404, 413, 415, 422, 429, 503),
    summary="Length rewards for a batch of samples of one step of a run",
)
async def score(request: Request, body: RewardsRequest) -> RewardsResponse:
    state = service_state(request)
    ctx = context_of(request)
    ctx.run_id = body.run_id
    ctx.step = body.step
    ctx.samples = len(body.samples)
    if state.settings.log_responses:
        ctx.logged_texts = [s.response for s in body.samples]
    timing = Timing()
    ctx.timing = timing
    result = await scoring.score(state, body.run_id, body.step, body.samples, timing)
    ctx.step = result.step  # the counted one when the request had none
    return RewardsResponse(
        run_id=result.run_id,
        step=result.step,
        rewards=[r.reward for r in result.samples],
        length_rewards=[r.length_reward for r in result.samples],
        # The edge models carry the domain results' fields under the same names.
        samples=[SampleReward.model_validate(r, from_attributes=True) for r in result.samples],
        schedule=ScheduleOut(
            k=result.schedule.k,
            dynamic=result.schedule.dynamic,
            low_slope_count=result.schedule.low_slope_count,
            late=result.late,
        ),
    )
