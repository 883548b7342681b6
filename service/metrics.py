"""Prometheus metrics, one registry per app (no module-level mutable state)."""

from __future__ import annotations

import threading
from collections import OrderedDict

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# How many runs keep a per-run k gauge; the least recently updated is dropped beyond this.
MAX_RUN_GAUGES = 100

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
_TOKEN_BUCKETS = (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)


class Metrics:
    """All the service's metrics, registered in a private CollectorRegistry."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, max_run_gauges: int = MAX_RUN_GAUGES) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "sigreward_requests",
            "HTTP requests by route and status",
            ["endpoint", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "sigreward_request_duration_seconds",
            "HTTP request duration by route",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "sigreward_queue_depth", "Estimated tokens queued or running in the batcher", registry=r
        )
        self.queue_requests = Gauge(
            "sigreward_queue_requests", "Requests queued or running in the batcher", registry=r
        )
        self.queue_rejections = Counter(
            "sigreward_queue_rejections",
            "Requests refused with 429 because the queue was full",
            registry=r,
        )
        self.queue_abandoned = Counter(
            "sigreward_queue_abandoned",
            "Queued requests dropped before scoring because their client disconnected",
            registry=r,
        )
        self.throughput = Gauge(
            "sigreward_engine_tokens_per_second",
            "Measured engine throughput (estimated tokens per second, recent batches)",
            registry=r,
        )
        self.batch_requests = Histogram(
            "sigreward_batch_requests",
            "Requests merged into one engine call",
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_texts = Histogram(
            "sigreward_batch_size",
            "Texts or value lists in one engine call",
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "sigreward_batch_tokens",
            "Estimated tokens in one engine call",
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.forward_seconds = Histogram(
            "sigreward_model_forward_seconds",
            "Wall time of one engine call (worker thread)",
            ["kind"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.samples = Counter(
            "sigreward_samples",
            "Samples scored by POST /v1/rewards and POST /get_reward",
            registry=r,
        )
        self.schedule_k = Gauge(
            "sigreward_schedule_k",
            "Current k of a run (most recently active runs only)",
            ["run_id"],
            registry=r,
        )
        self.k_runaway = Counter(
            "sigreward_k_runaway_warnings",
            "Finished steps whose k exceeded four times its starting value (docs/method.md#schedule-of-k)",
            registry=r,
        )
        self.in_flight = Gauge(
            "sigreward_requests_in_flight", "HTTP requests being served", registry=r
        )
        self.ready = Gauge("sigreward_ready", "1 when /readyz answers 200", registry=r)
        self._lock = threading.Lock()
        self._max_runs = max_run_gauges
        self._runs: OrderedDict[str, None] = OrderedDict()

    def observe_k(self, run_id: str, k: float) -> None:
        """Record a run's current k; only the most recently active runs keep a series."""
        with self._lock:
            self._runs[run_id] = None
            self._runs.move_to_end(run_id)
            while len(self._runs) > self._max_runs:
                old, _ = self._runs.popitem(last=False)
                try:
                    self.schedule_k.remove(old)
                except KeyError:
                    pass
            self.schedule_k.labels(run_id=run_id).set(k)

    def k_warning(self, run_id: str, step: int, k: float) -> None:
        """RunService hook: a finished step left k above the runaway bound (docs/method.md#schedule-of-k)."""
        self.k_runaway.inc()

    def forget_run(self, run_id: str) -> None:
        with self._lock:
            if self._runs.pop(run_id, 0) is None:
                try:
                    self.schedule_k.remove(run_id)
                except KeyError:
                    pass

    def render(self) -> bytes:
        return generate_latest(self.registry)
