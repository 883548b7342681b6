"""Kernel tests: the Triton kernel runs under TRITON_INTERPRET=1 on machines without CUDA.

The interpreter flag is read when triton is imported and when a kernel is decorated, so it is
set here, at collection time, before any test module imports kernels.significance.
"""

from __future__ import annotations

import importlib
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def _triton_import_error() -> str | None:
    try:
        importlib.import_module("triton")
    except Exception as exc:  # any failure means the kernel cannot run here
        return f"{type(exc).__name__}: {exc}"
    return None


TRITON_ERROR = _triton_import_error()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if TRITON_ERROR is None:
        return
    skip = pytest.mark.skip(reason=f"triton is not importable ({TRITON_ERROR})")
    for item in items:
        if "kernels" in item.keywords:
            item.add_marker(skip)
