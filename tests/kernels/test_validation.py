"""Bad inputs fail with a ValueError that names the field. A call is checked once, by the
public op, before either backend runs."""

from __future__ import annotations

import pytest
import torch

from sigreward.kernels import (
    RaggedOffsets,
    significance_postprocess,
    significance_postprocess_fused,
)
from sigreward.kernels.contract import ScoresCall


def i32(*xs: int) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.int32)


GOOD = {
    "scores": torch.zeros(4),
    "cu_words": i32(0, 1, 4),
    "cu_segments": i32(0, 2),
    "cu_samples": i32(0, 1),
}


def offsets(args: dict) -> RaggedOffsets:
    return RaggedOffsets(args["cu_words"], args["cu_segments"], args["cu_samples"])


def call(**changes: object) -> None:
    args = {**GOOD, **changes}
    extra = {k: v for k, v in args.items() if k not in GOOD}
    significance_postprocess(args["scores"], offsets(args), 0.5, **extra)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cu_words": torch.tensor([0, 1, 4])}, "cu_words must be int32"),
        ({"cu_segments": i32(0, 2).reshape(1, 2)}, "cu_segments must be 1-D"),
        ({"cu_samples": i32()}, "cu_samples must hold at least one offset"),
        ({"cu_words": i32(1, 2, 4)}, "cu_words must start at 0"),
        ({"cu_words": i32(0, 1, 3)}, r"cu_words must end at the number of tokens T \(4\)"),
        ({"cu_segments": i32(0, 1)}, r"cu_segments must end at the number of words W \(2\)"),
        ({"cu_samples": i32(0, 0)}, r"cu_samples must end at the number of segments G \(1\)"),
        ({"cu_words": i32(0, 3, 2, 4)}, r"cu_words must be non-decreasing.*\[2\] = 2"),
        ({"scores": torch.zeros(2, 2)}, "scores must be 1-D"),
        ({"scores": torch.zeros(4, dtype=torch.int64)}, "scores must be a float tensor"),
        ({"input_kind": "probs"}, "input_kind must be one of"),
    ],
)
def test_bad_inputs_name_the_field(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(**changes)


def test_bad_head_names_the_field() -> None:
    fused = significance_postprocess_fused
    good = offsets(GOOD)
    with pytest.raises(ValueError, match=r"w_diff must have shape \(8,\)"):
        fused(torch.zeros(4, 8), torch.zeros(7), 0.0, good, 0.5)
    with pytest.raises(ValueError, match="hidden must be 2-D"):
        fused(torch.zeros(4), torch.zeros(4), 0.0, good, 0.5)
    with pytest.raises(ValueError, match="b_diff must be a scalar"):
        fused(torch.zeros(4, 8), torch.zeros(8), torch.zeros(2), good, 0.5)
    with pytest.raises(ValueError, match=r"cu_words must end at the number of tokens T \(5\)"):
        fused(torch.zeros(5, 8), torch.zeros(8), 0.0, good, 0.5)


def test_threshold_must_be_finite() -> None:
    with pytest.raises(ValueError, match="threshold must be a finite number, got nan"):
        significance_postprocess(GOOD["scores"], offsets(GOOD), float("nan"))


@pytest.mark.kernels
def test_block_must_be_a_power_of_two() -> None:
    from sigreward.kernels import significance

    call = ScoresCall(GOOD["scores"], offsets(GOOD), 0.5)
    with pytest.raises(ValueError, match="block must be a power of two, got 12"):
        significance.postprocess_scores(call, block=12)
