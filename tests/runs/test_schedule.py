"""The schedule state machine of docs/method.md#schedule-of-k, worked by hand and against numpy."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from sigreward.domain.run_config import RunConfig
from sigreward.domain.schedule import (
    ScheduleState,
    apply_finished_step,
    base_k,
    initial_state,
    least_squares_slope,
)

# lambda_w_e = pi/2 makes the starting k exactly 1, so hand-worked numbers stay round.
UNIT = math.pi / 2


def run_schedule(config: RunConfig, scores: list[tuple[int, float]]) -> list[ScheduleState]:
    state = initial_state(config)
    states = []
    for step, score in scores:
        state = apply_finished_step(state, config, step, score)
        states.append(state)
    return states


def test_initial_k_is_lambda_w_e_over_half_pi() -> None:
    config = RunConfig()
    state = initial_state(config)
    assert state.k == pytest.approx(5.0 / (math.pi / 2))
    assert not state.dynamic and state.low_slope_count == 0 and state.last_finished_step is None


def test_hand_worked_sequence() -> None:
    config = RunConfig(lambda_w_e=UNIT, slope_start_step=2, slope_period=2, slope_threshold=2.5)
    scores = [(0, 0.0), (1, 0.5), (2, 0.6), (3, 0.9), (4, 1.5)] + [(s, 1.5) for s in range(5, 10)]
    states = run_schedule(config, scores)
    # Steps 0 and 1 are before slope_start_step: k stays at its start.
    assert [s.k for s in states[:2]] == [1.0, 1.0]
    assert not states[1].dynamic
    # Step 2: n = min(2, 3 - 1) = 2 points (1, .5), (2, .6): slope .1 is the first slope,
    # scale = 1 / .1 = 10, scaled = 1.0 <= 2.5: low count 1, k = max(-2, -0.5).
    assert states[2].dynamic
    assert states[2].first_slope == pytest.approx(0.1)
    assert states[2].scale == pytest.approx(10.0)
    assert states[2].low_slope_count == 1
    assert states[2].k == pytest.approx(-0.5)
    # Step 3: slope .3 -> scaled 3.0 > 2.5: k = 3.0 and the low count resets.
    assert states[3].k == pytest.approx(3.0) and states[3].low_slope_count == 0
    assert not states[3].k_warning  # 3.0 is not above 4 * 1
    # Step 4: slope .6 -> k = 6.0, above four times the starting k.
    assert states[4].k == pytest.approx(6.0) and states[4].k_warning
    # Flat from step 4: the low count grows and k walks down to the bound -2.
    assert [s.low_slope_count for s in states[5:]] == [1, 2, 3, 4, 5]
    assert [s.k for s in states[5:]] == pytest.approx([-0.5, -1.0, -1.5, -2.0, -2.0])
    assert not states[-1].k_warning
    assert states[-1].scale == pytest.approx(10.0)  # the first slope alone sets the scale


def test_single_point_slope_is_zero_and_first_zero_slope_scales_by_start_k() -> None:
    config = RunConfig(lambda_w_e=UNIT, slope_start_step=0, slope_period=10)
    states = run_schedule(config, [(0, 0.2), (1, 0.9), (2, 0.9)])
    assert states[0].k == 1.0 and not states[0].dynamic  # len(H) = 1: nothing to fit
    # Step 1: n = min(10, 1) = 1 point: slope 0, first == 0 -> scale = lambda_w_e/(pi/2) = 1.
    assert states[1].dynamic and states[1].first_slope == 0.0 and states[1].scale == 1.0
    assert states[1].k == -0.5 and states[1].low_slope_count == 1
    # Step 2: n = 2 points (1, .9), (2, .9): slope 0 -> still low.
    assert states[2].k == -1.0 and states[2].low_slope_count == 2


def test_tiny_first_slope_scale_is_bounded_by_1e6() -> None:
    config = RunConfig(lambda_w_e=UNIT, slope_start_step=2, slope_period=2)
    # Step 2: first slope 1e-9 -> scale = 1 / max(1e-6, 1e-9) = 1e6; scaled 1e-3: low branch.
    # Step 3: slope 1e-5 -> scaled 10 > 2.5: k = 10 (the huge-k behaviour docs/method.md warns of).
    states = run_schedule(config, [(0, 0.0), (1, 0.0), (2, 1e-9), (3, 1e-9 + 1e-5)])
    assert states[2].scale == pytest.approx(1e6)
    assert states[2].k == -0.5 and states[2].low_slope_count == 1
    assert states[3].k == pytest.approx(10.0, rel=1e-6) and states[3].low_slope_count == 0
    assert states[3].k_warning


def test_k_max_caps_k() -> None:
    config = RunConfig(
        lambda_w_e=UNIT, slope_start_step=2, slope_period=2, slope_threshold=2.5, k_max=3.0
    )
    states = run_schedule(config, [(0, 0.0), (1, 0.5), (2, 0.6), (3, 0.9), (4, 1.5)])
    assert states[3].k == 3.0 and states[4].k == 3.0
    assert not any(s.k_warning for s in states)
    assert initial_state(RunConfig(k_max=1.0)).k == 1.0


def test_steps_must_finish_in_order() -> None:
    config = RunConfig()
    state = apply_finished_step(initial_state(config), config, 5, 0.5)
    with pytest.raises(ValueError, match="in order"):
        apply_finished_step(state, config, 5, 0.5)


def test_json_round_trip() -> None:
    config = RunConfig(lambda_w_e=UNIT, slope_start_step=1, slope_period=3)
    state = run_schedule(config, [(0, 0.1), (1, 0.4), (3, 0.9), (4, 0.2)])[-1]
    again = ScheduleState.from_json(state.to_json())
    assert again == state
    assert apply_finished_step(again, config, 9, 0.5) == apply_finished_step(state, config, 9, 0.5)


def test_least_squares_slope_matches_numpy() -> None:
    rng = random.Random(3)
    points = tuple((s, rng.random()) for s in (2, 3, 7, 8, 11))
    xs, ys = zip(*points, strict=True)
    assert least_squares_slope(points) == pytest.approx(np.polyfit(xs, ys, 1)[0], abs=1e-12)
    assert least_squares_slope(((4, 0.3),)) == 0.0


def reference_schedule(
    config: RunConfig, scores: list[tuple[int, float]]
) -> list[tuple[float, int, bool]]:
    """A direct transcription of docs/method.md#schedule-of-k on the full history, for comparison."""
    start_k = config.lambda_w_e / (math.pi / 2)
    k, low, scale, out, history = start_k, 0, None, [], []
    for step, score in scores:
        history.append((step, score))
        if step >= config.slope_start_step and len(history) >= 2:
            n = min(config.slope_period, len(history) - 1)
            last = history[-n:]
            if n == 1:
                slope = 0.0
            else:
                slope = float(np.polyfit([p[0] for p in last], [p[1] for p in last], 1)[0])
            if scale is None:
                scale = start_k if slope == 0 else start_k / max(1e-6, abs(slope))
            scaled = slope * scale
            if scaled <= config.slope_threshold:
                low += 1
                k = max(-2 * start_k, -0.5 * low)
            else:
                low = 0
                k = scaled
        out.append((k, low, scale is not None))
    return out


def noisy_rising_then_flat(seed: int, steps: int = 200, group: int = 16) -> list[list[float]]:
    """Per step, ``group`` 0/1 outcomes whose probability rises until step 80, then stays."""
    rng = random.Random(seed)
    per_step = []
    for step in range(steps):
        p = 0.2 + 0.6 * min(step, 80) / 80
        per_step.append([1.0 if rng.random() < p else 0.0 for _ in range(group)])
    return per_step


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_200_steps_match_reference_transcription(seed: int) -> None:
    config = RunConfig()
    outcomes = noisy_rising_then_flat(seed)
    scores = [(step, sum(o) / len(o)) for step, o in enumerate(outcomes)]
    states = run_schedule(config, scores)
    expected = reference_schedule(config, scores)
    for state, (k, low, dynamic) in zip(states, expected, strict=True):
        assert state.k == pytest.approx(k, rel=1e-9, abs=1e-9)
        assert state.low_slope_count == low
        assert state.dynamic == dynamic
    start_k = base_k(config)
    # Invariants a reader can check by eye.
    assert all(s.k == start_k and not s.dynamic for s in states[:50])
    assert states[50].dynamic and states[50].first_slope is not None
    first = states[50].first_slope
    assert states[50].scale == pytest.approx(start_k / max(1e-6, abs(first)))
    assert all(s.scale == states[50].scale for s in states[50:])
    # On the flat part, low-slope steps have negative k bounded by -2 * start_k, and any
    # step above the threshold resets the count.
    for before, after in zip(states[119:], states[120:], strict=False):
        if after.low_slope_count > 0:
            assert -2 * start_k <= after.k < 0
            assert after.low_slope_count == before.low_slope_count + 1
        else:
            assert after.k > config.slope_threshold
    assert sum(1 for s in states[120:] if s.k < 0) > 40
