"""Serial and pipelined execution of the engine's three stages over waves of texts.

A call's texts are cut into waves (`split_waves`); every wave goes through the same three
stages (`Stages`):

- prepare (host): tokenize, chunk, lay out, pack the forward batches;
- launch (device): the forward batches and the post-processing kernel, then the copy of the
  results back to the host, started but not waited for;
- collect (host): wait for that copy, turn it into per-text results.

`SerialExecutor` runs the stages one after the other in the caller's thread. The
`PipelinedExecutor` runs each stage in a thread of its own, so that while the device works on
one wave the host prepares the next one and collects the previous one, across calls as well
as within one. Both run the same stage functions on the same waves, so their results are
identical bit for bit; only the overlap differs.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

Prepared = TypeVar("Prepared")
Pending = TypeVar("Pending")

# UTF-8 bytes per token for cutting calls into waves before they are tokenized, as the
# batcher estimates (three slightly over-counts English, so a wave holds at most about its
# budget; CJK characters are three bytes and about one token each).
BYTES_PER_TOKEN = 3
# Waves the host may prepare ahead of the device: one being filled while one waits keeps the
# device busy without holding many packed waves in (pinned) memory.
LOOKAHEAD_WAVES = 2


def split_waves(texts: Sequence[str], wave_tokens: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of consecutive texts of at most about `wave_tokens` tokens each
    (estimated from UTF-8 bytes); a text longer than the budget is a wave of its own.

    Depends on the texts only, so serial and pipelined execution cut a call identically."""
    if wave_tokens < 1:
        raise ValueError(f"wave_tokens must be >= 1, got {wave_tokens}")
    waves: list[tuple[int, int]] = []
    start, used = 0, 0
    for i, text in enumerate(texts):
        cost = len(text.encode("utf-8", "surrogatepass")) // BYTES_PER_TOKEN + 2
        if i > start and used + cost > wave_tokens:
            waves.append((start, i))
            start, used = i, 0
        used += cost
    if start < len(texts):
        waves.append((start, len(texts)))
    return waves


class Stages(Protocol[Prepared, Pending]):
    """The engine's work on one wave of texts, in three stages (module docstring)."""

    def prepare(self, texts: list[str], detail: bool) -> Prepared: ...
    def launch(self, prepared: Prepared, threshold: float) -> Pending: ...
    def collect(self, pending: Pending) -> list[Any]: ...


class SerialExecutor:
    """Every stage of every wave in the caller's thread; calls are serialised by a lock."""

    def __init__(self, stages: Stages[Any, Any], wave_tokens: int) -> None:
        self.stages = stages
        self.wave_tokens = wave_tokens
        self._lock = threading.Lock()

    def run(self, texts: list[str], threshold: float, detail: bool) -> list[Any]:
        out: list[Any] = []
        with self._lock:
            for a, b in split_waves(texts, self.wave_tokens):
                prepared = self.stages.prepare(texts[a:b], detail)
                out.extend(self.stages.collect(self.stages.launch(prepared, threshold)))
        return out

    def close(self) -> None:
        pass


@dataclass
class _Job:
    texts: list[str]
    threshold: float
    detail: bool
    waves: list[tuple[int, int]]
    future: Future[list[Any]] = field(default_factory=Future)
    parts: dict[int, list[Any]] = field(default_factory=dict)

    def fail(self, exc: BaseException) -> None:
        # Two stages can fail the same call at once; the first error is the one reported.
        with contextlib.suppress(InvalidStateError):
            self.future.set_exception(exc)

    @property
    def failed(self) -> bool:
        return self.future.done()


_STOP = object()


class PipelinedExecutor:
    """Host preparation, device work and collection of results in three threads.

    Any number of threads may call `run` (or `submit`) at once; calls are taken in order, and
    the host starts on the next call's first wave while the device still runs this one's last.
    A stage that raises fails its call only: the call's remaining waves are skipped and the
    other calls go on.
    """

    def __init__(
        self, stages: Stages[Any, Any], wave_tokens: int, lookahead: int = LOOKAHEAD_WAVES
    ) -> None:
        self.stages = stages
        self.wave_tokens = wave_tokens
        self._jobs: queue.Queue[Any] = queue.Queue()
        self._prepared: queue.Queue[Any] = queue.Queue(maxsize=max(1, lookahead))
        # Launched waves waiting for their copy back; bounded so the device thread cannot run
        # arbitrarily far ahead of the host's collection (each holds device memory).
        self._launched: queue.Queue[Any] = queue.Queue(maxsize=max(1, lookahead))
        self._threads = [
            threading.Thread(target=fn, name=f"sigreward-{name}", daemon=True)
            for name, fn in (
                ("host", self._host_loop),
                ("device", self._device_loop),
                ("collect", self._collect_loop),
            )
        ]
        self._start_lock = threading.Lock()
        self._started = False
        self._closed = False

    def submit(self, texts: list[str], threshold: float, detail: bool) -> Future[list[Any]]:
        job = _Job(texts, threshold, detail, split_waves(texts, self.wave_tokens))
        if not job.waves:
            job.future.set_result([])
            return job.future
        # Under the lock, so that no call can be queued behind close()'s stop marker.
        with self._start_lock:
            if self._closed:
                raise RuntimeError("the engine's pipeline is closed")
            if not self._started:
                for t in self._threads:
                    t.start()
                self._started = True
            self._jobs.put(job)
        return job.future

    def run(self, texts: list[str], threshold: float, detail: bool) -> list[Any]:
        return self.submit(texts, threshold, detail).result()

    def close(self) -> None:
        """Finish the calls already submitted, then stop the threads."""
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
            if self._started:
                self._jobs.put(_STOP)
        if self._started:
            for t in self._threads:
                t.join()

    # Each loop passes _STOP on to the next stage when it gets it, then ends.

    def _host_loop(self) -> None:
        if hasattr(self.stages, "prepare_async"):
            self._host_loop_async()
            return
        while (job := self._jobs.get()) is not _STOP:
            for index, (a, b) in enumerate(job.waves):
                if job.failed:
                    break
                prepared = _attempt(job, self.stages.prepare, job.texts[a:b], job.detail)
                if not job.failed:
                    self._prepared.put((job, index, prepared))
        self._prepared.put(_STOP)

    def _host_loop_async(self) -> None:
        """The host stage on stages that prepare in worker processes: up to one wave per
        worker (and one more) in flight, across calls, handed on in order."""
        ahead = max(1, getattr(self.stages, "host_workers", 0)) + 1
        flight: deque[tuple[_Job, int, Future[Any]]] = deque()

        def hand_on() -> None:
            job, index, future = flight.popleft()
            if job.failed:
                return
            prepared = _attempt(job, lambda: self.stages.finish(future.result()))
            if not job.failed:
                self._prepared.put((job, index, prepared))

        while True:
            if flight and self._jobs.empty():
                hand_on()  # nothing new to start: pass on what is ready
                continue
            job = self._jobs.get()
            if job is _STOP:
                break
            for index, (a, b) in enumerate(job.waves):
                started = _attempt(job, self.stages.prepare_async, job.texts[a:b], job.detail)
                if job.failed:
                    break
                flight.append((job, index, started))
                while len(flight) >= ahead:
                    hand_on()
        while flight:
            hand_on()
        self._prepared.put(_STOP)

    def _device_loop(self) -> None:
        while (item := self._prepared.get()) is not _STOP:
            job, index, prepared = item
            if job.failed:
                continue
            pending = _attempt(job, self.stages.launch, prepared, job.threshold)
            del item, prepared  # its pinned buffers go back to the allocator as soon as possible
            if not job.failed:
                self._launched.put((job, index, pending))
        self._launched.put(_STOP)

    def _collect_loop(self) -> None:
        while (item := self._launched.get()) is not _STOP:
            job, index, pending = item
            if job.failed:
                continue
            part = _attempt(job, self.stages.collect, pending)
            if job.failed:
                continue
            job.parts[index] = part
            if len(job.parts) == len(job.waves):
                job.future.set_result([r for i in range(len(job.waves)) for r in job.parts[i]])


def _attempt(job: _Job, fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args), or None after failing `job` with what it raised (the thread goes on)."""
    try:
        return fn(*args)
    except BaseException as exc:  # noqa: BLE001 (handed to the caller through the future)
        job.fail(exc)
        return None
