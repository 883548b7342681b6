"""A simulated device: an encoder stand-in that takes a set time per position, off the GIL.

Why: on a machine without a GPU the pipeline's overlap of host and device work still has to
be shown and measured. A CUDA forward costs the host little (kernel launches) and then runs
on the device while Python threads go on; this stand-in does the same by sleeping
(`time.sleep` releases the GIL) for `seconds_per_position` times the positions of the
forward, padding included, as a GPU computes them. Its hidden states are a deterministic
function of each position's token id and column (seeded tables), so counts are exactly
reproducible whatever the batching. Used by bench/bench_pipeline.py and the pipeline tests;
the service never installs it.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import torch

from sigreward.engine.loader import WINDOW_POSITIONS

if TYPE_CHECKING:
    from sigreward.engine.engine import SignificanceEngine


class SimulatedEncoder:
    """Callable (input_ids (B, L), mask or None) -> hidden states (B, L, d)."""

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        seconds_per_position: float,
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
        max_positions: int = WINDOW_POSITIONS,
    ) -> None:
        if seconds_per_position < 0:
            raise ValueError(f"seconds_per_position must be >= 0, got {seconds_per_position}")
        gen = torch.Generator().manual_seed(seed)
        self.tokens = torch.randn(vocab_size, hidden_size, generator=gen).to(dtype)
        self.columns = (torch.randn(max_positions, hidden_size, generator=gen) * 0.5).to(dtype)
        self.seconds_per_position = seconds_per_position
        self._lock = threading.Lock()
        self.busy_seconds = 0.0  # wall time spent inside forwards (the "device time")
        self.positions = 0
        self.forwards = 0

    def __call__(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        start = time.perf_counter()
        n = int(input_ids.numel())
        hidden = self.tokens[input_ids] + self.columns[: input_ids.shape[1]]
        left = start + n * self.seconds_per_position - time.perf_counter()
        if left > 0:
            time.sleep(left)
        with self._lock:
            self.busy_seconds += time.perf_counter() - start
            self.positions += n
            self.forwards += 1
        return hidden

    def reset(self) -> None:
        with self._lock:
            self.busy_seconds, self.positions, self.forwards = 0.0, 0, 0


def simulate_device(
    engine: SignificanceEngine, seconds_per_position: float, seed: int = 0
) -> SimulatedEncoder:
    """Replace `engine`'s encoder forward by a SimulatedEncoder and return it.

    `engine` is a SignificanceEngine with a model whose 2-label head is a separate Linear
    layer (every *ForTokenClassification checkpoint): the real head still runs on the
    stand-in's hidden states."""
    clf = engine._classifier
    if clf is None:
        raise ValueError("the engine has no model to simulate a device for")
    if clf._head is None:
        raise ValueError("the simulated device needs a model with a separate 2-label head")
    config = clf.model.config
    dtype = next(clf.model.parameters()).dtype
    stand_in = SimulatedEncoder(
        int(config.vocab_size), int(config.hidden_size), seconds_per_position, dtype, seed
    )
    clf.encoder_override = stand_in
    return stand_in
