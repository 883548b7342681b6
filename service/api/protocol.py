"""Request and response models of the HTTP interface (api.md), documented in the OpenAPI schema."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, model_validator

from sigreward.bounds import MAX_ABS_SCORE, MAX_COUNT, MAX_STEP, MAX_TOKENS
from sigreward.domain.results import Counts
from sigreward.domain.run_config import RUN_ID_PATTERN, RunConfig
from sigreward.domain.samples import GivenReference, SampleRequest
from sigreward.domain.views import RunView

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _replace_lone_surrogates(text: str) -> str:
    # HTTP bodies with half a surrogate pair ("\ud800") are refused before validation
    # (service/api/jsonbody.py); this keeps samples built in-process encodable (UTF-8 stores).
    return _LONE_SURROGATE.sub("\ufffd", text)


# Policy output: any text, broken bytes (U+FFFD, control characters, lone surrogates) included.
Text = Annotated[str, AfterValidator(_replace_lone_surrogates)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Count = Annotated[float, Field(ge=0, le=MAX_COUNT, allow_inf_nan=False)]
Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS)]
Score = Annotated[float, Field(ge=-MAX_ABS_SCORE, le=MAX_ABS_SCORE, allow_inf_nan=False)]
# A run id's schema, in a body field (RunId) and in a URL path (deps.RunIdPath).
RUN_ID_SCHEMA: dict[str, Any] = {
    "pattern": RUN_ID_PATTERN,
    "min_length": 1,
    "max_length": 128,
    "description": "1 to 128 characters of [A-Za-z0-9._-]",
    "examples": ["exp-1"],
}
RunId = Annotated[str, Field(**RUN_ID_SCHEMA)]


class _Strict(BaseModel):
    # strict: JSON false or "1.5" is not a number here, as the OpenAPI schema says.
    model_config = ConfigDict(extra="forbid", strict=True)


# -- errors -------------------------------------------------------------------------------
class ErrorBody(BaseModel):
    type: str = Field(description="machine-readable error kind", examples=["validation_error"])
    message: str = Field(examples=["samples[3].correct: field required"])
    param: str | None = Field(
        default=None, description="the offending field, e.g. samples[3].correct"
    )


class ErrorResponse(BaseModel):
    """The one error envelope of every 4xx/5xx answer."""

    error: ErrorBody


# -- rewards ------------------------------------------------------------------------------
class Reference(_Strict):
    """A "given" reference: its text (classifier), its values (values mode) or its counts."""

    response: Text | None = Field(default=None, description="reference text (classifier mode)")
    significance: list[FiniteFloat] | None = Field(
        default=None, description="reference unit values (values mode)"
    )
    significant: Count | None = None
    insignificant: Count | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Reference:
        forms = [
            self.response is not None,
            self.significance is not None,
            self.significant is not None or self.insignificant is not None,
        ]
        if sum(forms) != 1:
            raise ValueError(
                'give exactly one of {"response"}, {"significance"} or '
                '{"significant", "insignificant"}'
            )
        if forms[2] and (self.significant is None or self.insignificant is None):
            raise ValueError('"significant" and "insignificant" go together')
        return self

    def to_reference(self) -> GivenReference:
        counts = None
        if self.significant is not None:
            counts = Counts(float(self.significant), float(self.insignificant or 0.0))
        return GivenReference(
            response=self.response,
            significance=None if self.significance is None else tuple(self.significance),
            counts=counts,
        )


class RewardSample(_Strict):
    id: str | None = Field(
        default=None, max_length=512, description="unique within (run, step); makes retries safe"
    )
    prompt_id: str | None = Field(
        default=None, max_length=512, description="needed by first_seen / group references"
    )
    response: Text | None = Field(default=None, description="the policy's response (classifier)")
    significance: list[FiniteFloat] | None = Field(
        default=None, description="values mode: one number per unit, higher = more significant"
    )
    num_tokens: Tokens | None = Field(default=None, description="policy tokens (baselines)")
    target_tokens: Tokens | None = Field(default=None, description="L1 target length")
    correct: StrictBool | None = Field(default=None, description="the outcome")
    label: Text | None = Field(
        default=None,
        description="reference answer, verified against `response` when `correct` is absent",
    )
    score: Score | None = Field(
        default=None,
        description="outcome score, at most 1e9 in magnitude; default 1.0 / 0.0 from correct",
    )
    reference: Reference | None = None

    def to_sample(self, index: int) -> SampleRequest:
        """The domain's sample; ``index`` is its position in the request."""
        return SampleRequest(
            index=index,
            id=self.id,
            prompt_id=self.prompt_id,
            response=self.response,
            significance=None if self.significance is None else tuple(self.significance),
            num_tokens=self.num_tokens,
            target_tokens=self.target_tokens,
            correct=self.correct,
            label=self.label,
            score=self.score,
            reference=None if self.reference is None else self.reference.to_reference(),
        )


class RewardsRequest(_Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "run_id": "exp-1",
                    "step": 120,
                    "samples": [
                        {
                            "id": "p7-r3",
                            "prompt_id": "p7",
                            "significance": [0.3, 2.1, 0.2, 1.7],
                            "num_tokens": 812,
                            "correct": True,
                            "reference": {"significant": 40, "insignificant": 25},
                        }
                    ],
                }
            ]
        },
    )

    run_id: RunId
    step: int | None = Field(
        default=None,
        ge=0,
        le=MAX_STEP,
        examples=[120],
        description="leave out to let the server count it from the run's samples_per_step",
    )
    samples: list[RewardSample] = Field(min_length=1)


class SampleReward(BaseModel):
    id: str | None = Field(description="the sample's id as sent (null when it had none)")
    length_reward: float = Field(description="the length reward alone")
    reward: float = Field(description="outcome score + length reward: what the trainer uses")
    correct: bool = Field(description="the outcome, as sent or as verified from the label")
    significant: float | None = Field(
        default=None, description="significant units of the response (significance reward)"
    )
    insignificant: float | None = Field(
        default=None, description="insignificant units of the response (significance reward)"
    )
    reference_significant: float | None = Field(
        default=None, description="significant units of the reference it was compared with"
    )
    reference_insignificant: float | None = Field(
        default=None, description="insignificant units of the reference it was compared with"
    )
    degenerate_reference: bool = Field(
        default=False,
        description="the reference lacked significant or insignificant units (docs/method.md#reward)",
    )
    duplicate: bool = Field(default=False, description="this (run, step, id) was already counted")


class ScheduleOut(BaseModel):
    k: float
    dynamic: bool
    low_slope_count: int
    late: bool


class RewardsResponse(BaseModel):
    run_id: str
    step: int
    rewards: list[float] = Field(description="score + length_reward, in sample order")
    length_rewards: list[float]
    samples: list[SampleReward]
    schedule: ScheduleOut


# -- runs ---------------------------------------------------------------------------------
class HistoryEntryOut(BaseModel):
    step: int
    score: float
    samples: int
    k_before: float
    k_after: float
    mean_significant: float | None = None
    mean_insignificant: float | None = None
    mean_length_reward_correct: float | None = None
    mean_length_reward_wrong: float | None = None
    degenerate_references: int = 0


class RunScheduleOut(BaseModel):
    k: float
    dynamic: bool = Field(description="false until the first slope is taken")
    low_slope_count: int
    last_finished_step: int | None
    k_warning: bool = Field(default=False, description="k exceeds 4x its starting value")
    max_step: int | None = None
    finished_through: int | None = None
    history: list[HistoryEntryOut]


class RunResponse(BaseModel):
    run_id: str
    config: RunConfig
    schedule: RunScheduleOut
    counted_samples: int = Field(
        default=0, description="samples numbered by the server's counter (requests without a step)"
    )
    suspected_retries: int = Field(
        default=0,
        description="requests answered from an identical one stored moments before (/get_reward)",
    )


class RunListResponse(BaseModel):
    runs: list[str] = Field(description="run ids, sorted")


def run_response(view: RunView) -> RunResponse:
    """The body of GET /v1/runs/{run_id} (and of PUT and the finish endpoint)."""
    return RunResponse.model_validate(view, from_attributes=True)


# -- significance inspection --------------------------------------------------------------
class SignificanceRequest(_Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"values": [[0.3, 2.1, 0.2, 1.7]], "significance_threshold": 0.5},
                {"texts": ["First, compute 2 + 2. So the answer is 4."]},
            ]
        },
    )

    texts: list[Text] | None = Field(default=None, min_length=1, description="classifier mode")
    values: list[list[FiniteFloat]] | None = Field(
        default=None, min_length=1, description="values mode"
    )
    significance_threshold: float | None = Field(default=None, gt=0, lt=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_input(self) -> SignificanceRequest:
        if (self.texts is None) == (self.values is None):
            raise ValueError('give exactly one of "texts" or "values"')
        return self


class UnitDetailOut(BaseModel):
    units: list[str] = Field(description="words (classifier) or unit indices (values)")
    values: list[float] = Field(description="normalised values in [0, 1]")
    significant: int
    insignificant: int
    chunk_units: list[int] = Field(
        description="units per min-max segment, in order: one per LLMLingua-2 chunk "
        "(classifier), one for the whole response (values)"
    )


class SignificanceResponse(BaseModel):
    significance: Literal["classifier", "values"]
    significance_threshold: float
    results: list[UnitDetailOut]


# -- operations ---------------------------------------------------------------------------
class Limits(BaseModel):
    max_body_bytes: int
    max_samples: int
    max_chars_per_response: int
    max_batch_tokens: int
    max_queue_tokens: int
    drain_timeout_s: float
    max_inflight_body_bytes: int
    body_timeout_s: float
    header_timeout_s: float
    max_connections: int


class InfoResponse(BaseModel):
    version: str
    significance_modes: list[str] = Field(description='"classifier" only with a model loaded')
    model: str | None
    device: str
    dtype: str | None = None
    exact: bool | None = Field(
        default=None,
        description="classifier mode runs in fp32, the published code's precision: its counts "
        "are the published pipeline's; false for bf16 (counts drift, see docs/perf.md); null "
        "without a model",
    )
    kernel_backend: str = Field(description='"triton" on CUDA, "torch" otherwise')
    store: str
    auth: bool = Field(description="bearer tokens required")
    ready: bool
    limits: Limits


class HealthResponse(BaseModel):
    status: str


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error codes, all with the envelope."""
    descriptions = {
        400: "malformed JSON",
        401: "missing or wrong bearer token",
        404: "unknown run",
        409: "conflicting run configuration",
        413: "request larger than the configured limits",
        415: "the body is not JSON (Content-Type must be application/json)",
        422: "invalid request (message names the field)",
        429: "queue full (see Retry-After)",
        500: "internal error",
        503: "not ready or draining",
    }
    return {code: {"model": ErrorResponse, "description": descriptions[code]} for code in codes}
