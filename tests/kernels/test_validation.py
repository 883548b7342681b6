"""Bad inputs fail with a ValueError that names the field, on both implementations."""

from __future__ import annotations

import pytest
import torch

from tests.kernels.backends import BACKENDS, FUSED_BACKENDS, Postprocess


def i32(*xs: int) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.int32)


GOOD = {
    "scores": torch.zeros(4),
    "cu_words": i32(0, 1, 4),
    "cu_segments": i32(0, 2),
    "cu_samples": i32(0, 1),
}


def call(postprocess: Postprocess, **changes: object) -> None:
    args = {**GOOD, **changes}
    extra = {k: v for k, v in args.items() if k not in GOOD}
    postprocess(args["scores"], args["cu_words"], args["cu_segments"], args["cu_samples"], 0.5,
                **extra)  # fmt: skip


@pytest.mark.parametrize("postprocess", BACKENDS)
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
def test_bad_inputs_name_the_field(postprocess: Postprocess, changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(postprocess, **changes)


@pytest.mark.parametrize("fused", FUSED_BACKENDS)
def test_bad_head_names_the_field(fused: Postprocess) -> None:
    offsets = (GOOD["cu_words"], GOOD["cu_segments"], GOOD["cu_samples"])
    with pytest.raises(ValueError, match=r"w_diff must have shape \(8,\)"):
        fused(torch.zeros(4, 8), torch.zeros(7), 0.0, *offsets, 0.5)
    with pytest.raises(ValueError, match="hidden must be 2-D"):
        fused(torch.zeros(4), torch.zeros(4), 0.0, *offsets, 0.5)
    with pytest.raises(ValueError, match="b_diff must be a scalar"):
        fused(torch.zeros(4, 8), torch.zeros(8), torch.zeros(2), *offsets, 0.5)
    with pytest.raises(ValueError, match=r"cu_words must end at the number of tokens T \(5\)"):
        fused(torch.zeros(5, 8), torch.zeros(8), 0.0, *offsets, 0.5)


@pytest.mark.parametrize("postprocess", BACKENDS)
def test_threshold_must_be_finite(postprocess: Postprocess) -> None:
    with pytest.raises(ValueError, match="threshold must be a finite number, got nan"):
        postprocess(GOOD["scores"], GOOD["cu_words"], GOOD["cu_segments"], GOOD["cu_samples"],
                    float("nan"))  # fmt: skip


@pytest.mark.kernels
def test_block_must_be_a_power_of_two() -> None:
    from sigreward.kernels.significance import significance_postprocess_triton

    with pytest.raises(ValueError, match="block must be a power of two, got 12"):
        significance_postprocess_triton(GOOD["scores"], GOOD["cu_words"], GOOD["cu_segments"],
                                        GOOD["cu_samples"], 0.5, block=12)  # fmt: skip
