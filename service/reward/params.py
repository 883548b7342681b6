"""The parameters each length reward takes: their JSON type, range and published default.

One table serves validation (``validate_reward_params``), the resolved defaults of a run
(``BASELINE_PARAMS``) and the docs. A parameter keeps the numeric meaning its schema states: a
``number`` is used as the real number it is (``max_tokens`` 100.5 is 100.5 tokens, never
truncated), an ``integer`` refuses a fractional value with an error naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sigreward.bounds import MAX_OPTION

ParamKind = Literal["number", "integer", "schedule"]
ParamValue = float | int | list[list[float | int]]

# LASER-D cuts its candidate target lengths from min_target to max_target in target_step
# increments; more than this many candidates is a client mistake, not a schedule.
MAX_TARGET_CANDIDATES = 10_000


class RewardParamError(ValueError):
    """A bad ``reward_params`` entry; ``param`` is the field path, e.g. ``reward_params.alpha``."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


@dataclass(frozen=True)
class ParamSpec:
    kind: ParamKind
    default: ParamValue | None  # None: required
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False


def _number(default: float | None, minimum: float | None = None, **kw: Any) -> ParamSpec:
    return ParamSpec("number", default, minimum, **kw)


def _positive(default: float | None) -> ParamSpec:
    return ParamSpec("number", default, 0.0, exclusive_minimum=True)


REWARD_PARAMS: dict[str, dict[str, ParamSpec]] = {
    "kimi": {"weight": _number(1.0, 0.0)},
    "cosine": {
        "max_tokens": _positive(14336.0),
        "correct_short": _number(2.0),
        "correct_long": _number(1.0),
        "wrong_short": _number(-10.0),
        "wrong_long": _number(0.0),
        "exceed": _number(-10.0),
    },
    "dapo": {
        "max_tokens": _positive(20480.0),
        "cache_tokens": _positive(4096.0),
        "factor": _number(1.0, 0.0),
    },
    "l1_exact": {"alpha": _number(0.0003, 0.0)},
    "l1_max": {"alpha": _number(0.0003, 0.0), "delta": _number(0.5)},
    "arora_zanette": {"alpha": _number(0.1, 0.0)},
    "truncation": {"max_tokens": _number(None, 0.0)},
    # The field's length rewards (service/reward/papers.py; docs/method.md).
    "shorter_better": {"alpha": _number(2.0, 0.0), "beta": _number(0.001, 0.0)},
    "grpo_lead": {
        "alpha": _number(0.05, 0.0),
        "epsilon": _positive(1e-6),
        "incorrect": _number(-1.0),
        "ddof": ParamSpec("integer", 1, 0.0, 1.0),
    },
    "alp": {"beta": _number(0.05, 0.0), "normalizer": _positive(8192.0)},
    "laser": {"alpha": _number(0.5, 0.0), "target_length": _number(None, 0.0)},
    "laser_d": {
        "alpha": _number(0.5, 0.0),
        "min_target": _number(1024.0, 0.0),
        "max_target": _number(16384.0, 0.0),
        "target_step": _positive(1024.0),
        "expected_correct": ParamSpec("integer", 1, 1.0),
    },
    "thinkprune": {"schedule": ParamSpec("schedule", None), "exceed": _number(0.0)},
}

# Published defaults per reward (None = required), the shape the rest of the service reads.
BASELINE_PARAMS: dict[str, dict[str, ParamValue | None]] = {
    reward: {name: spec.default for name, spec in specs.items()}
    for reward, specs in REWARD_PARAMS.items()
}


def validate_reward_params(
    reward: str, params: Mapping[str, Any], fill_defaults: bool = False
) -> dict[str, ParamValue]:
    """The checked, normalised parameters of ``reward`` (numbers as float, integers as int).

    With ``fill_defaults`` the published defaults fill omitted names and a missing required
    parameter is an error. Raises ``RewardParamError`` naming the first bad field.
    """
    specs = REWARD_PARAMS[reward]
    unknown = sorted(set(params) - set(specs))
    if unknown:
        raise RewardParamError(
            f"reward_params.{unknown[0]}",
            f"unknown parameter for reward {reward!r}; known: {sorted(specs)}",
        )
    out: dict[str, ParamValue] = {}
    for name, spec in specs.items():
        field = f"reward_params.{name}"
        if name in params:
            out[name] = _check(field, spec, params[name])
        elif fill_defaults:
            if spec.default is None:
                raise RewardParamError(field, f"required by reward {reward!r}")
            out[name] = spec.default
    # Relations are checked against the values the run will use, defaults included.
    defaults = {k: v for k, v in BASELINE_PARAMS[reward].items() if v is not None}
    _check_relations(reward, {**defaults, **out})
    return out


def _check(field: str, spec: ParamSpec, value: Any) -> ParamValue:
    if spec.kind == "schedule":
        return _schedule(field, value)
    if spec.kind == "integer":
        number = _integer(field, value)
    else:
        number = _finite(field, value, "a number")
    _in_range(field, spec, number)
    return number


def _finite(field: str, value: Any, what: str) -> float:
    # bool is an int in Python but true/false is not a number in JSON.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RewardParamError(field, f"must be {what}, got {_json_type(value)}")
    if not math.isfinite(value):
        raise RewardParamError(field, "must be finite")
    if abs(value) > MAX_OPTION:  # keeps every reward and a step's sums finite
        raise RewardParamError(field, f"must be of magnitude at most {MAX_OPTION:g}")
    return float(value)


def _integer(field: str, value: Any) -> int:
    number = _finite(field, value, "an integer")
    if not number.is_integer():
        raise RewardParamError(field, f"must be an integer, got {value!r}")
    return int(number)


def _in_range(field: str, spec: ParamSpec, number: float) -> None:
    if spec.minimum is not None:
        if spec.exclusive_minimum and number <= spec.minimum:
            raise RewardParamError(field, f"must be > {spec.minimum:g}, got {number:g}")
        if number < spec.minimum:
            raise RewardParamError(field, f"must be >= {spec.minimum:g}, got {number:g}")
    if spec.maximum is not None and number > spec.maximum:
        raise RewardParamError(field, f"must be <= {spec.maximum:g}, got {number:g}")


def _schedule(field: str, value: Any) -> list[list[float | int]]:
    """ThinkPrune's limit schedule: [[step, limit], ...], steps ascending from 0."""
    if not isinstance(value, list) or not value:
        raise RewardParamError(field, "must be a non-empty list of [step, limit] pairs")
    out: list[list[float | int]] = []
    for i, entry in enumerate(value):
        here = f"{field}[{i}]"
        if not isinstance(entry, list) or len(entry) != 2:
            raise RewardParamError(here, "must be a [step, limit] pair")
        step = _integer(f"{here}[0]", entry[0])
        limit = _finite(f"{here}[1]", entry[1], "a number")
        if step < 0:
            raise RewardParamError(f"{here}[0]", f"step must be >= 0, got {step}")
        if limit <= 0:
            raise RewardParamError(f"{here}[1]", f"limit must be > 0, got {limit:g}")
        if i == 0 and step != 0:
            raise RewardParamError(f"{here}[0]", "the first entry must start at step 0")
        if out and step <= out[-1][0]:
            raise RewardParamError(f"{here}[0]", "steps must be strictly increasing")
        out.append([step, limit])
    return out


def _check_relations(reward: str, params: Mapping[str, ParamValue]) -> None:
    if reward != "laser_d":
        return
    low, high, step = (params.get(k) for k in ("min_target", "max_target", "target_step"))
    if isinstance(low, float) and isinstance(high, float) and high < low:
        raise RewardParamError(
            "reward_params.max_target", f"must be >= min_target ({low:g}), got {high:g}"
        )
    if isinstance(low, float) and isinstance(high, float) and isinstance(step, float):
        if (high - low) / step + 1 > MAX_TARGET_CANDIDATES:
            raise RewardParamError(
                "reward_params.target_step",
                f"gives more than {MAX_TARGET_CANDIDATES} candidate targets between "
                f"min_target and max_target",
            )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
