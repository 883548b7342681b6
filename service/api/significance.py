"""POST /v1/significance: which units of a response count (inspection, used by the web page)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from sigreward.api.context import context_of
from sigreward.api.deps import domain_error, service_state
from sigreward.api.errors import ApiError
from sigreward.api.jsonroute import ParsedJsonRoute
from sigreward.api.protocol import (
    SignificanceRequest,
    SignificanceResponse,
    UnitDetailOut,
    error_responses,
)
from sigreward.api.scoring import sample_limits
from sigreward.batching import Timing
from sigreward.domain.errors import TooLarge
from sigreward.domain.samples import SPAN_ERROR, value_span_ok

router = APIRouter(tags=["significance"], route_class=ParsedJsonRoute)

DEFAULT_THRESHOLD = 0.5


@router.post(
    "/v1/significance",
    response_model=SignificanceResponse,
    responses=error_responses(400, 401, 413, 415, 422, 429, 503),
    summary="Per response: its units, their normalised values, and the counts",
)
async def significance(request: Request, body: SignificanceRequest) -> SignificanceResponse:
    state = service_state(request)
    items = body.texts if body.texts is not None else body.values
    assert items is not None
    name = "texts" if body.texts is not None else "values"
    limits = sample_limits(state)
    try:
        limits.check_count(name, len(items), "items")
        for i, item in enumerate(items):
            limits.check_length(f"{name}[{i}]", len(item))
    except TooLarge as exc:
        raise domain_error(exc) from exc
    for i, values in enumerate(body.values or []):
        if not value_span_ok(values):
            raise ApiError(
                422,
                f"values[{i}]: {SPAN_ERROR}",
                param=f"values[{i}]",
            )
    if body.texts is not None and not state.model_loaded:
        raise ApiError(
            422,
            "texts: the server has no model loaded (start it with --model); send values instead",
            param="texts",
        )
    assert state.batcher is not None
    threshold = body.significance_threshold or DEFAULT_THRESHOLD
    timing = Timing()
    ctx = context_of(request)
    ctx.timing = timing
    ctx.samples = len(items)
    try:
        if body.texts is not None:
            details = await state.batcher.inspect_texts(body.texts, threshold, timing)
        else:
            details = await state.batcher.inspect_values(body.values or [], threshold, timing)
    except Exception as exc:
        raise domain_error(exc) from exc
    return SignificanceResponse(
        significance="classifier" if body.texts is not None else "values",
        significance_threshold=threshold,
        results=[
            UnitDetailOut(
                units=list(d.units),
                values=[float(v) for v in d.values],
                significant=int(d.significant),
                insignificant=int(d.insignificant),
                chunk_units=list(d.chunk_units),
            )
            for d in details
        ],
    )
