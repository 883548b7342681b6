"""The dynamic schedule of k (docs/method.md#schedule-of-k) as a pure state machine.

``apply_finished_step`` takes the state after the previous finished step and returns the state
after step ``step`` with training score ``score``. Nothing here reads clocks, stores or logs;
``sigreward.domain.runs`` persists the state (``to_json`` / ``from_json``) and reports warnings.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sigreward.domain.run_config import RunConfig

# docs/method.md#schedule-of-k: metrics and logs report k above this multiple of its starting value.
K_WARNING_FACTOR = 4.0


@dataclass(frozen=True)
class ScheduleState:
    """Everything the schedule needs to continue after the last finished step."""

    k: float
    dynamic: bool = False  # True once the first slope has been taken
    first_slope: float | None = None
    scale: float | None = None
    low_slope_count: int = 0
    last_finished_step: int | None = None
    history_length: int = 0  # len(H): finished steps so far
    # The last ``slope_period`` points of H: n = min(slope_period, len(H) - 1) never needs more.
    recent: tuple[tuple[int, float], ...] = ()
    k_warning: bool = False  # k > K_WARNING_FACTOR * initial k after the last finished step

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "k": self.k,
            "dynamic": self.dynamic,
            "first_slope": self.first_slope,
            "scale": self.scale,
            "low_slope_count": self.low_slope_count,
            "last_finished_step": self.last_finished_step,
            "history_length": self.history_length,
            "recent": [[step, score] for step, score in self.recent],
            "k_warning": self.k_warning,
        }
        return json.dumps(data, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ScheduleState:
        data = json.loads(text)
        return cls(
            k=float(data["k"]),
            dynamic=bool(data["dynamic"]),
            first_slope=None if data["first_slope"] is None else float(data["first_slope"]),
            scale=None if data["scale"] is None else float(data["scale"]),
            low_slope_count=int(data["low_slope_count"]),
            last_finished_step=data["last_finished_step"],
            history_length=int(data["history_length"]),
            recent=tuple((int(s), float(v)) for s, v in data["recent"]),
            k_warning=bool(data.get("k_warning", False)),
        )


def base_k(config: RunConfig) -> float:
    """lambda_w_e / (pi/2): the starting k before any cap."""
    return config.lambda_w_e / (math.pi / 2)


def _cap(k: float, config: RunConfig) -> float:
    return k if config.k_max is None else min(k, config.k_max)


def initial_state(config: RunConfig) -> ScheduleState:
    """The state of a run before any step has finished."""
    return ScheduleState(k=_cap(base_k(config), config))


def least_squares_slope(points: tuple[tuple[int, float], ...]) -> float:
    """Ordinary least-squares slope of score over step; fewer than two points give 0."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(step for step, _ in points) / n
    mean_y = sum(score for _, score in points) / n
    sxx = sum((step - mean_x) ** 2 for step, _ in points)
    if sxx == 0:
        return 0.0
    sxy = sum((step - mean_x) * (score - mean_y) for step, score in points)
    return sxy / sxx


def apply_finished_step(
    state: ScheduleState, config: RunConfig, step: int, score: float
) -> ScheduleState:
    """The state after ``step`` finished with training score ``score`` (docs/method.md#schedule-of-k)."""
    if state.last_finished_step is not None and step <= state.last_finished_step:
        raise ValueError(
            f"step {step} finished after step {state.last_finished_step}: steps finish in order"
        )
    if not math.isfinite(score):
        raise ValueError(f"score of step {step} must be finite, got {score}")
    history_length = state.history_length + 1
    keep = max(1, config.slope_period)
    recent = (state.recent + ((step, float(score)),))[-keep:]
    new = replace(state, last_finished_step=step, history_length=history_length, recent=recent)
    if step < config.slope_start_step or history_length < 2:
        return replace(new, k_warning=new.k > K_WARNING_FACTOR * base_k(config))

    n = min(config.slope_period, history_length - 1)
    slope = least_squares_slope(recent[-n:])
    first_slope, scale = state.first_slope, state.scale
    if not state.dynamic:
        first_slope = slope
        scale = base_k(config) if slope == 0 else base_k(config) / max(1e-6, abs(slope))
    assert scale is not None
    scaled = slope * scale
    if scaled <= config.slope_threshold:
        low_count = state.low_slope_count + 1
        k = max(-2.0 * base_k(config), -0.5 * low_count)
    else:
        low_count = 0
        k = scaled
    k = _cap(k, config)
    return replace(
        new,
        k=k,
        dynamic=True,
        first_slope=first_slope,
        scale=scale,
        low_slope_count=low_count,
        k_warning=k > K_WARNING_FACTOR * base_k(config),
    )
