"""The two implementations under test, as pytest parameters (Triton ones carry ``kernels``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sigreward.kernels import reference
from sigreward.kernels.reference import SignificanceOutput

Postprocess = Callable[..., SignificanceOutput]


def torch_postprocess(*args: Any, **kwargs: Any) -> SignificanceOutput:
    return reference.significance_postprocess(*args, **kwargs)


def triton_postprocess(*args: Any, block: int = 2, **kwargs: Any) -> SignificanceOutput:
    # a tiny tile so that even hand-sized segments span several tiles
    from sigreward.kernels.significance import significance_postprocess_triton

    return significance_postprocess_triton(*args, block=block, **kwargs)


BACKENDS = [
    pytest.param(torch_postprocess, id="torch"),
    pytest.param(triton_postprocess, id="triton", marks=pytest.mark.kernels),
]


def torch_fused(*args: Any, **kwargs: Any) -> SignificanceOutput:
    return reference.significance_postprocess_fused(*args, **kwargs)


def triton_fused(*args: Any, block: int = 4, **kwargs: Any) -> SignificanceOutput:
    from sigreward.kernels.significance import significance_postprocess_fused_triton

    return significance_postprocess_fused_triton(*args, block=block, **kwargs)


FUSED_BACKENDS = [
    pytest.param(torch_fused, id="torch"),
    pytest.param(triton_fused, id="triton", marks=pytest.mark.kernels),
]
