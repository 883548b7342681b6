"""Async token-budget batcher between the HTTP layer and the (synchronous) engine.

Requests enqueue their texts or value lists with an estimated token count; one background task
merges queued jobs of the same kind and threshold into engine calls of at most
``max_batch_tokens`` estimated tokens and runs each call in a worker thread, so the event loop
stays free while the model runs. Engine calls are serialised, except that a pipelined engine
(``max_concurrent_calls`` 2) gets the next call while it runs the current one, so that its
host work on one overlaps its device work on the other. The queue is bounded by
``max_queue_tokens``: a job that does not fit is refused with :class:`QueueFull` (answered
429 with Retry-After), a job that could never fit with :class:`JobTooLarge` (413).
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sigreward.domain.results import Counts, UnitDetail
from sigreward.metrics import Metrics

if TYPE_CHECKING:  # the engine package imports torch; the batcher itself needs none of it
    from sigreward.engine import Engine

# UTF-8 bytes per classifier token used for the queue estimate. WordPiece / SentencePiece
# average about four characters per token on English (one byte each), and about one token per
# character on CJK (three bytes each): bytes / 3 holds for both, where characters / 3 was three
# times low on CJK. It over-counts English a little, which errs on the side of refusing early.
BYTES_PER_TOKEN = 3
# Retry-After never exceeds this (a client should look again within the hour).
MAX_RETRY_AFTER_S = 3600
# Set by the HTTP layer for each request: resolves when the client disconnects, so queued work
# whose client is gone is dropped before it starts (a retry then counts it once).
CLIENT_GONE: contextvars.ContextVar[asyncio.Future[None] | None] = contextvars.ContextVar(
    "sigreward_client_gone", default=None
)


class QueueFull(Exception):
    def __init__(self, retry_after_s: int, queued_tokens: int) -> None:
        super().__init__(f"the scoring queue is full ({queued_tokens} tokens queued)")
        self.retry_after_s = retry_after_s
        self.queued_tokens = queued_tokens


class JobTooLarge(Exception):
    def __init__(self, tokens: int, limit: int) -> None:
        super().__init__(
            f"the request needs about {tokens} tokens of scoring, more than the queue holds "
            f"({limit}); split it into smaller requests"
        )
        self.tokens = tokens
        self.limit = limit


class BatcherClosed(Exception):
    pass


class ClientGone(Exception):
    """The client disconnected while its job waited in the queue; the job was dropped."""

    def __init__(self) -> None:
        super().__init__(
            "the client closed the connection before scoring started; nothing was recorded"
        )


# An engine call: (texts or value lists, threshold) -> one result per input.
EngineCall = Callable[[list[Any], float], list[Any]]


def _text_job(texts: Sequence[str]) -> tuple[list[str], int]:
    """The items of a job on texts and its estimated tokens."""
    return list(texts), sum(estimate_text_tokens(t) for t in texts)


def _values_job(values: Sequence[Sequence[float]]) -> tuple[list[list[float]], int]:
    """The items of a job on value lists and its tokens: one per value, one per list."""
    return [list(v) for v in values], sum(len(v) for v in values) + len(values)


def estimate_text_tokens(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass")) // BYTES_PER_TOKEN + 2


@dataclass
class Timing:
    """Where a job's time went: waiting in the queue, and inside the engine call."""

    queue_ms: float = 0.0
    inference_ms: float = 0.0


@dataclass
class _Job:
    kind: str
    items: list[Any]
    threshold: float
    tokens: int
    future: asyncio.Future[list[Any]]
    enqueued_at: float = field(default_factory=time.perf_counter)
    timing: Timing = field(default_factory=Timing)
    started: bool = False  # taken into an engine call


class Batcher:
    def __init__(
        self,
        engine: Engine,
        max_batch_tokens: int,
        max_queue_tokens: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        # The engine method each job kind runs.
        self._calls: dict[str, EngineCall] = {
            "count_texts": engine.count_texts,
            "count_values": engine.count_values,
            "inspect_texts": engine.inspect_texts,
            "inspect_values": engine.inspect_values,
        }
        self.max_batch_tokens = max(1, max_batch_tokens)
        self.max_queue_tokens = max(1, max_queue_tokens)
        self.metrics = metrics
        self._pending: deque[_Job] = deque()
        self._queued_tokens = 0  # pending + running
        self._queued_jobs = 0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Engine calls in flight at once: 1 (serialised) unless the engine says it pipelines.
        self.depth = max(1, engine.max_concurrent_calls)
        self._executor = ThreadPoolExecutor(
            max_workers=self.depth, thread_name_prefix="sigreward-engine"
        )
        self._closed = False
        # Throughput estimate (tokens per second) for Retry-After; a pessimistic guess until
        # the first batch is measured.
        self._tokens_per_s = 2000.0
        self._measured = False

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="sigreward-batcher"
            )

    async def stop(self) -> None:
        """Refuse new jobs, fail the queued ones and wait for the running engine call."""
        self._closed = True
        while self._pending:
            job = self._pending.popleft()
            self._release(job)
            if not job.future.done():
                job.future.set_exception(BatcherClosed("the server is shutting down"))
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    # -- public API ------------------------------------------------------------------------
    @property
    def queued_tokens(self) -> int:
        return self._queued_tokens

    async def count_texts(
        self, texts: Sequence[str], threshold: float, timing: Timing | None = None
    ) -> list[Counts]:
        return await self.submit("count_texts", *_text_job(texts), threshold, timing)

    async def count_values(
        self, values: Sequence[Sequence[float]], threshold: float, timing: Timing | None = None
    ) -> list[Counts]:
        return await self.submit("count_values", *_values_job(values), threshold, timing)

    async def inspect_texts(
        self, texts: Sequence[str], threshold: float, timing: Timing | None = None
    ) -> list[UnitDetail]:
        return await self.submit("inspect_texts", *_text_job(texts), threshold, timing)

    async def inspect_values(
        self, values: Sequence[Sequence[float]], threshold: float, timing: Timing | None = None
    ) -> list[UnitDetail]:
        return await self.submit("inspect_values", *_values_job(values), threshold, timing)

    async def submit(
        self,
        kind: str,
        items: list[Any],
        tokens: int,
        threshold: float,
        timing: Timing | None = None,
    ) -> list[Any]:
        if kind not in self._calls:
            raise ValueError(f"unknown job kind {kind!r}")
        if not items:
            return []
        if self._closed:
            raise BatcherClosed("the server is shutting down")
        if tokens > self.max_queue_tokens:
            raise JobTooLarge(tokens, self.max_queue_tokens)
        if self._queued_tokens + tokens > self.max_queue_tokens:
            if self.metrics:
                self.metrics.queue_rejections.inc()
            raise QueueFull(self._retry_after(), self._queued_tokens)
        job = _Job(kind, items, threshold, tokens, asyncio.get_running_loop().create_future())
        if timing is not None:
            job.timing = timing
        self._queued_tokens += tokens
        self._queued_jobs += 1
        self._update_gauges()
        self._pending.append(job)
        self._wakeup.set()
        gone = CLIENT_GONE.get()
        try:
            if gone is not None and not job.future.done():
                await asyncio.wait({job.future, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not job.future.done() and not job.started:
                    job.future.cancel()  # _take_batch drops it and frees its tokens
                    if self.metrics:
                        self.metrics.queue_abandoned.inc()
                    raise ClientGone()
            # shield: a client that disconnects cancels its wait, not the shared engine call.
            return await asyncio.shield(job.future)
        except asyncio.CancelledError:
            job.future.cancel()
            raise

    # -- worker ----------------------------------------------------------------------------
    @property
    def tokens_per_s(self) -> float:
        """Measured engine throughput: a moving average over recent batches."""
        return self._tokens_per_s

    def _retry_after(self) -> int:
        """Seconds until the queued work is done at the measured throughput."""
        seconds = math.ceil(self._queued_tokens / self._tokens_per_s)
        return int(min(MAX_RETRY_AFTER_S, max(1, seconds)))

    def _release(self, job: _Job) -> None:
        self._queued_tokens -= job.tokens
        self._queued_jobs -= 1
        self._update_gauges()

    def _update_gauges(self) -> None:
        if self.metrics:
            self.metrics.queue_depth.set(self._queued_tokens)
            self.metrics.queue_requests.set(self._queued_jobs)

    def _take_batch(self) -> list[_Job]:
        """The oldest live job plus later jobs of the same kind and threshold, within budget."""
        while self._pending and self._pending[0].future.done():
            self._release(self._pending.popleft())  # cancelled while waiting
        if not self._pending:
            return []
        first = self._pending.popleft()
        batch, budget = [first], self.max_batch_tokens - first.tokens
        kept: deque[_Job] = deque()
        while self._pending:
            job = self._pending.popleft()
            if job.future.done():
                self._release(job)
            elif (
                job.kind == first.kind and job.threshold == first.threshold and job.tokens <= budget
            ):
                batch.append(job)
                budget -= job.tokens
            else:
                kept.append(job)
        self._pending = kept
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        # A pipelined engine prepares the next call on the host while the device runs this
        # one, so it is handed up to `depth` calls at once; jobs that arrive meanwhile queue
        # and merge into the next call.
        slots = asyncio.Semaphore(self.depth)
        running: set[asyncio.Task[None]] = set()
        while True:
            if not self._pending:
                if self._closed:
                    break
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await slots.acquire()
            batch = self._take_batch()
            if not batch:
                slots.release()
                continue
            for job in batch:
                job.started = True
            task = loop.create_task(self._execute(loop, batch))
            running.add(task)

            def done(t: asyncio.Task[None]) -> None:
                running.discard(t)
                slots.release()

            task.add_done_callback(done)
        if running:
            await asyncio.gather(*running)

    async def _execute(self, loop: asyncio.AbstractEventLoop, batch: list[_Job]) -> None:
        kind, threshold = batch[0].kind, batch[0].threshold
        items = [item for job in batch for item in job.items]
        tokens = sum(job.tokens for job in batch)
        started = time.perf_counter()
        for job in batch:
            job.timing.queue_ms = (started - job.enqueued_at) * 1000.0
        try:
            results = await loop.run_in_executor(
                self._executor, self._calls[kind], items, threshold
            )
            error: BaseException | None = None
        except Exception as exc:
            results, error = [], exc
        elapsed = time.perf_counter() - started
        self._record(kind, batch, len(items), tokens, elapsed)
        if error is not None and len(batch) > 1:
            # One request's bad input must not fail the requests merged with it: run each
            # alone so that only the culprit gets the error.
            for job in batch:
                await self._run_alone(loop, job)
            return
        offset = 0
        for job in batch:
            job.timing.inference_ms = elapsed * 1000.0
            part = results[offset : offset + len(job.items)]
            offset += len(job.items)
            self._resolve(job, part, error)

    async def _run_alone(self, loop: asyncio.AbstractEventLoop, job: _Job) -> None:
        started = time.perf_counter()
        error: BaseException | None = None
        results: list[Any] = []
        if not job.future.done():
            try:
                results = await loop.run_in_executor(
                    self._executor, self._calls[job.kind], job.items, job.threshold
                )
            except Exception as exc:
                error = exc
        job.timing.inference_ms = (time.perf_counter() - started) * 1000.0
        self._resolve(job, results, error)

    def _resolve(self, job: _Job, part: list[Any], error: BaseException | None) -> None:
        self._release(job)
        if job.future.done():
            return
        if error is not None:
            job.future.set_exception(error)
        elif len(part) != len(job.items):
            job.future.set_exception(
                RuntimeError(
                    f"engine {job.kind} returned {len(part)} results for {len(job.items)} inputs"
                )
            )
        else:
            job.future.set_result(part)

    def _record(
        self, kind: str, batch: list[_Job], n_items: int, tokens: int, elapsed: float
    ) -> None:
        if elapsed > 0 and tokens > 0:
            rate = tokens / elapsed
            # The first measurement replaces the start-up guess; later ones move an average.
            self._tokens_per_s = (
                rate if not self._measured else 0.8 * self._tokens_per_s + 0.2 * rate
            )
            self._measured = True
        if self.metrics:
            self.metrics.throughput.set(self._tokens_per_s)
            self.metrics.batch_requests.observe(len(batch))
            self.metrics.batch_texts.observe(n_items)
            self.metrics.batch_tokens.observe(tokens)
            self.metrics.forward_seconds.labels(kind=kind).observe(elapsed)
