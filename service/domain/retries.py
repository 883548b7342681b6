"""Resent requests: the rule that tells a resent copy from a new request, and the stored
answers that copies are given back.

Requests with sample ids are recognised by those ids (the step's stored results); requests
without them (OpenRLHF) by a fingerprint of their body (``RetryCheck``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from sigreward.domain.results import SampleResult, ScoreResult
from sigreward.domain.schedule import ScheduleState


@dataclass(frozen=True)
class RetryCheck:
    """How to recognise a resent request that carries no sample ids (OpenRLHF): the same
    ``fingerprint`` (a hash of everything the request sends) stored less than ``window_s``
    seconds before ``now`` is answered with that request's stored result and counts nothing.
    See docs/integrations.md for what the window trades off."""

    fingerprint: str
    window_s: float
    now: float
    # A resent request comes at least this long after the first was answered (OpenRLHF sleeps
    # 1 s before it resends); identical responses generated together arrive closer than that.
    min_gap_s: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.window_s > 0


def is_resent(age_s: float, window_s: float, min_gap_s: float = 0.0) -> bool:
    """Whether a request identical to one stored ``age_s`` seconds ago counts as a resent copy
    (the rule ``bench/retry_rules.py`` measures)."""
    return window_s > 0 and min_gap_s <= age_s <= window_s


def sample_result_json(result: SampleResult) -> str:
    """One counted sample's result, stored under its id."""
    data = asdict(result)
    data.pop("duplicate")
    return json.dumps(data, allow_nan=False)


def sample_result_from_json(text: str) -> SampleResult:
    """A stored result, given back to a retried sample id: marked as a duplicate."""
    return SampleResult(**json.loads(text), duplicate=True)


def answer_json(result: ScoreResult) -> str:
    """A whole answer, stored under its request's fingerprint. The schedule keeps what the
    answer shows of it."""
    return json.dumps(
        {
            "run_id": result.run_id,
            "step": result.step,
            "samples": [asdict(sample) for sample in result.samples],
            "schedule": {
                "k": result.schedule.k,
                "dynamic": result.schedule.dynamic,
                "low_slope_count": result.schedule.low_slope_count,
                "late": result.late,
            },
            "suspected_retry": result.suspected_retry,
        },
        allow_nan=False,
    )


def answer_from_json(text: str) -> ScoreResult:
    """A stored answer, replayed: its samples are marked as duplicates."""
    data = json.loads(text)
    schedule = data["schedule"]
    return ScoreResult(
        run_id=data["run_id"],
        step=data["step"],
        samples=[SampleResult(**{**s, "duplicate": True}) for s in data["samples"]],
        schedule=ScheduleState(
            k=schedule["k"],
            dynamic=schedule["dynamic"],
            low_slope_count=schedule["low_slope_count"],
        ),
        late=schedule["late"],
        suspected_retry=True,
    )
