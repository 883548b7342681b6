"""What scoring produces, from the engine to the answer: counts and unit details of a response,
the result of a sample and of a rewards request. Plain values: no torch, no HTTP."""

from __future__ import annotations

from dataclasses import dataclass

from sigreward.domain.schedule import ScheduleState


@dataclass(frozen=True)
class Counts:
    """Significant / insignificant unit counts of one response (fractional for pinned means)."""

    significant: float
    insignificant: float

    @property
    def total(self) -> float:
        return self.significant + self.insignificant


@dataclass(frozen=True)
class UnitDetail:
    """Inspection view of one response: its units, their normalised values and its counts."""

    units: list[str]
    values: list[float]
    significant: int
    insignificant: int
    chunk_units: list[int]  # units per min-max segment (chunk), in order; they sum to len(units)


@dataclass(frozen=True)
class SampleResult:
    """What the service answers for one sample."""

    id: str | None
    length_reward: float
    reward: float
    correct: bool
    significant: float | None = None
    insignificant: float | None = None
    reference_significant: float | None = None
    reference_insignificant: float | None = None
    # docs/method.md#reward: the reference lacked significant or insignificant units (the
    # paper's rule then sets both ratios to 0). Reported so users can see the rule fire.
    degenerate_reference: bool = False
    duplicate: bool = False


@dataclass
class ScoreResult:
    """The answer to one rewards request: every sample's result, and the schedule state
    (``k``) they were scored with."""

    run_id: str
    step: int
    samples: list[SampleResult]
    schedule: ScheduleState
    # The step was finished (or a later one seen) before the request came: scored with the
    # step's own k, and nothing counted.
    late: bool = False
    # Answered from a recent identical request (a resent request without sample ids).
    suspected_retry: bool = False
