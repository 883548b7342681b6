"""Everything one app instance owns, kept on ``app.state.service`` (no module-level state)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sigreward.api.bodies import BodyBudget
from sigreward.api.parsing import JsonParser
from sigreward.batching import Batcher
from sigreward.domain.runs import RunService
from sigreward.domain.verify import LabelVerifier
from sigreward.metrics import Metrics
from sigreward.settings import Settings
from sigreward.store import Store

if TYPE_CHECKING:  # the engine package imports torch
    from sigreward.engine import Engine


@dataclass
class ServiceState:
    settings: Settings
    metrics: Metrics
    engine: Engine | None = None
    store: Store | None = None
    runs: RunService | None = None
    batcher: Batcher | None = None
    verifier: LabelVerifier | None = None
    ready: bool = False
    draining: bool = False
    in_flight: int = 0
    started_at: float = field(default_factory=time.time)
    warmup_task: asyncio.Task[None] | None = None
    json_parser: JsonParser = field(default_factory=JsonParser)
    # Bytes of request bodies in flight, shared by every request to this app.
    body_budget: BodyBudget = field(init=False)

    def __post_init__(self) -> None:
        self.body_budget = BodyBudget(
            self.settings.max_inflight_body_bytes, self.settings.body_wait_s
        )

    @property
    def model_loaded(self) -> bool:
        return self.engine is not None and self.engine.has_model

    def start_draining(self) -> None:
        """SIGTERM: /readyz turns 503 at once and new work is refused.

        Called from a signal handler: plain attribute writes only (no locks, no logging)."""
        self.draining = True
        self.ready = False

    def request_started(self) -> None:
        self.in_flight += 1
        self.metrics.in_flight.set(self.in_flight)

    def request_finished(self) -> None:
        self.in_flight -= 1
        self.metrics.in_flight.set(self.in_flight)
