"""``Engine``: what the service reads from a significance engine (the batcher, the API, /v1/info).

``SignificanceEngine`` is the production engine; any stand-in handed to ``create_app`` or the
batcher (tests, benchmarks) provides the same members.
"""

from __future__ import annotations

from typing import Protocol

from sigreward.domain.results import Counts, UnitDetail


class Engine(Protocol):
    @property
    def model_name(self) -> str | None:
        """The checkpoint (local directory or hub id); None without a model."""
        ...

    @property
    def device(self) -> str:
        """Where scoring runs: "cpu", "cuda:0", ..."""
        ...

    @property
    def dtype(self) -> str:
        """The model's weights: "fp32" or "bf16"."""
        ...

    @property
    def kernel_backend(self) -> str:
        """The post-processing kernels: "triton" or "torch"."""
        ...

    @property
    def has_model(self) -> bool:
        """Whether a token classifier is loaded (classifier mode); values mode works without."""
        ...

    @property
    def max_concurrent_calls(self) -> int:
        """How many calls a caller should keep in flight to keep the device busy."""
        ...

    def warmup(self) -> None: ...
    def count_texts(self, texts: list[str], threshold: float) -> list[Counts]: ...
    def count_values(self, values: list[list[float]], threshold: float) -> list[Counts]: ...
    def inspect_texts(self, texts: list[str], threshold: float) -> list[UnitDetail]: ...
    def inspect_values(self, values: list[list[float]], threshold: float) -> list[UnitDetail]: ...
