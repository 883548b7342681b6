"""The two implementations under test, as pytest parameters (Triton ones carry ``kernels``).

Each takes the public op's arguments (valid ones: tests/kernels/test_validation.py checks the
op's checks) and runs its backend on them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sigreward.kernels import reference
from sigreward.kernels.contract import FusedCall, ScoresCall, SignificanceOutput

Postprocess = Callable[..., SignificanceOutput]


def torch_postprocess(*args: Any, **kwargs: Any) -> SignificanceOutput:
    return reference.postprocess_scores(ScoresCall(*args, **kwargs))


def triton_postprocess(*args: Any, block: int = 2, **kwargs: Any) -> SignificanceOutput:
    # a tiny tile so that even hand-sized segments span several tiles
    from sigreward.kernels import significance

    return significance.postprocess_scores(ScoresCall(*args, **kwargs), block=block)


BACKENDS = [
    pytest.param(torch_postprocess, id="torch"),
    pytest.param(triton_postprocess, id="triton", marks=pytest.mark.kernels),
]


def torch_fused(*args: Any, **kwargs: Any) -> SignificanceOutput:
    return reference.postprocess_fused(FusedCall(*args, **kwargs))


def triton_fused(*args: Any, block: int = 4, **kwargs: Any) -> SignificanceOutput:
    from sigreward.kernels import significance

    return significance.postprocess_fused(FusedCall(*args, **kwargs), block=block)


FUSED_BACKENDS = [
    pytest.param(torch_fused, id="torch"),
    pytest.param(triton_fused, id="triton", marks=pytest.mark.kernels),
]
