"""Typed request and response objects of the sigreward HTTP API (v1).

Response models accept fields they do not know, so a newer server never breaks an older client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Reference(BaseModel):
    """A "given" reference: its text, its per-unit values, or its counts."""

    model_config = ConfigDict(extra="forbid")

    response: str | None = None
    significance: list[float] | None = None
    significant: float | None = None
    insignificant: float | None = None


class Sample(BaseModel):
    """One sample of ``POST /v1/rewards``; every field is optional at this level, the server
    checks what the run's modes need and names the missing field."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    prompt_id: str | None = None
    response: str | None = None
    significance: list[float] | None = None
    num_tokens: int | None = None
    target_tokens: int | None = None
    correct: bool | None = None
    score: float | None = None
    # Ground-truth answer; the server verifies the response against it (run option `verifier`).
    label: str | None = None
    reference: Reference | None = None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, mode="json")


SampleLike = Sample | Mapping[str, Any]


def as_sample(sample: SampleLike, index: int) -> Sample:
    """A Sample from a dict or a Sample (a copy: callers' objects are never modified)."""
    if isinstance(sample, Sample):
        return sample.model_copy(deep=True)
    if isinstance(sample, Mapping):
        return Sample.model_validate(dict(sample))
    raise TypeError(f"samples[{index}] must be a dict or a Sample, not {type(sample).__name__}")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class SampleResult(_Open):
    id: str | None = None
    length_reward: float
    reward: float
    # What the server decided: given by the client, or verified against the sample's label.
    correct: bool | None = None
    significant: float | None = None
    insignificant: float | None = None
    reference_significant: float | None = None
    reference_insignificant: float | None = None
    degenerate_reference: bool = False
    duplicate: bool = False


class Schedule(_Open):
    k: float
    dynamic: bool = False
    low_slope_count: int = 0
    late: bool = False


class ScoreResult(_Open):
    """The answer of ``score``: one entry per sample, in the order the samples were given."""

    run_id: str
    step: int
    rewards: list[float]
    length_rewards: list[float]
    samples: list[SampleResult]
    schedule: Schedule
    # How many HTTP requests the batch was split into (1 when it fit the server's limits).
    requests: int = 1

    @property
    def correct(self) -> list[bool | None]:
        return [s.correct for s in self.samples]


class StepStats(_Open):
    step: int
    score: float | None = None
    samples: int | None = None
    k_after: float | None = None


class RunSchedule(_Open):
    k: float
    dynamic: bool = False
    low_slope_count: int = 0
    last_finished_step: int | None = None
    history: list[StepStats] = Field(default_factory=list)


class RunView(_Open):
    run_id: str
    config: dict[str, Any] = Field(default_factory=dict)
    schedule: RunSchedule | None = None
    # Samples the server numbered for requests without a step, and requests it answered from
    # an identical one of moments before instead of counting them again.
    counted_samples: int = 0
    suspected_retries: int = 0


class UnitDetail(_Open):
    units: list[str] = Field(default_factory=list)
    values: list[float] = Field(default_factory=list)
    significant: int
    insignificant: int


class SignificanceResult(_Open):
    results: list[UnitDetail] = Field(default_factory=list)


class ServerLimits(BaseModel):
    """The request limits the client splits batches by (from ``GET /v1/info``)."""

    max_samples: int = 1024
    max_body_bytes: int = 8 * 1024 * 1024
    max_chars_per_response: int | None = None

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> ServerLimits:
        """Limits from an info body: under ``"limits"`` or at the top level; defaults otherwise."""
        nested = info.get("limits")
        source: Mapping[str, Any] = nested if isinstance(nested, Mapping) else info
        found = {
            name: source[name]
            for name in ("max_samples", "max_body_bytes", "max_chars_per_response")
            if isinstance(source.get(name), int) and not isinstance(source.get(name), bool)
        }
        return cls(**found)
