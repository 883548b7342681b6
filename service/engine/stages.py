"""The engine's three stages on one wave of texts (see service/engine/pipeline.py).

prepare runs on the host only; launch queues the device work (forwards, post-processing
kernel, copy of the results to pinned host memory) and returns without waiting for it on
CUDA; collect waits for that copy and builds the per-text results.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from sigreward.domain.results import Counts, UnitDetail
from sigreward.engine.chunking import model_input_chunks
from sigreward.engine.classifier import ChunkClassifier
from sigreward.engine.layout import TextsLayout, layout_chunks
from sigreward.engine.packing import ForwardBatch, build_batches, host_tensor
from sigreward.engine.tokenization import TextTokenizer
from sigreward.kernels.contract import RaggedOffsets, SignificanceOutput, check_offsets
from sigreward.kernels.dispatch import significance_postprocess, significance_postprocess_fused

_CPU = torch.device("cpu")


@dataclass
class PreparedWave:
    n_texts: int
    detail: bool
    layout: TextsLayout
    batches: list[ForwardBatch]
    offsets: RaggedOffsets


@dataclass
class PendingWave:
    n_texts: int
    detail: bool
    layout: TextsLayout
    out: SignificanceOutput  # host tensors, filled once `ready` has fired
    ready: torch.cuda.Event | None  # None: already complete (CPU)


@dataclass
class ForwardCounters:
    """Positions run through the model since the engine started, and seconds spent in each
    stage (each stage runs in one thread at a time, so plain adds are safe)."""

    real: int = 0  # CLS/SEP and tokens
    padded: int = 0  # every position of every forward, padding included
    forwards: int = 0
    prepare_s: float = 0.0
    launch_s: float = 0.0  # on CUDA: queueing the work, not running it
    collect_s: float = 0.0  # on CUDA: includes waiting for the device

    @property
    def padded_fraction(self) -> float:
        return 1.0 - self.real / self.padded if self.padded else 0.0


class HostPreparer:
    """The host's work on a wave of texts, with nothing but the tokenizer and the special ids:
    picklable, so worker processes can run it (`TextStages(host_workers=N)`)."""

    def __init__(self, tokenizer: TextTokenizer, cls_id: int, sep_id: int, pad_id: int) -> None:
        self.tokenizer = tokenizer
        self.ids = (cls_id, sep_id, pad_id)

    def __call__(
        self, texts: list[str], detail: bool, forward_tokens: int, pin: bool
    ) -> PreparedWave:
        tok = self.tokenizer
        layout = layout_chunks(model_input_chunks(tok, texts), tok.tables)
        batches = list(build_batches(layout, *self.ids, forward_tokens, pin))
        offsets = RaggedOffsets(
            *(host_tensor(a, pin) for a in (layout.cu_words, layout.cu_segments, layout.cu_samples))
        )
        # Checked here, on the host, so the device path needs no synchronising check.
        check_offsets(layout.n_word_tokens, offsets, _CPU)
        return PreparedWave(len(texts), detail, layout, batches, offsets)


# The worker process's preparer, set once by `_init_worker` (so the tokenizer is sent once).
_WORKER: HostPreparer | None = None


def _init_worker(preparer: HostPreparer) -> None:
    global _WORKER
    _WORKER = preparer


def _worker_prepare(texts: list[str], detail: bool, forward_tokens: int) -> PreparedWave:
    assert _WORKER is not None
    wave = _WORKER(texts, detail, forward_tokens, pin=False)
    # Plain arrays cross the process boundary by value; tensors would need shared memory.
    return _map_tensors(wave, lambda t: t.numpy())


def _map_tensors(wave: PreparedWave, fn: Callable[[Any], Any]) -> PreparedWave:
    def batch(b: ForwardBatch) -> ForwardBatch:
        opt = lambda x: None if x is None else fn(x)  # noqa: E731
        return replace(b, input_ids=fn(b.input_ids), attention_mask=opt(b.attention_mask),
                       rows=fn(b.rows), cols=fn(b.cols), dest=fn(b.dest), keep=opt(b.keep))  # fmt: skip

    return replace(wave, batches=[batch(b) for b in wave.batches],
                   offsets=wave.offsets._make(fn(t) for t in wave.offsets))  # fmt: skip


class TextStages:
    def __init__(
        self,
        tokenizer: TextTokenizer,
        classifier: ChunkClassifier,
        device: torch.device,
        forward_tokens: Callable[[], int],
        host_workers: int = 0,
    ) -> None:
        self.tokenizer = tokenizer
        self.classifier = classifier
        self.device = device
        self._forward_tokens = forward_tokens
        # Pinned host buffers make the copies to and from the GPU asynchronous.
        self._pin = device.type == "cuda"
        self.counters = ForwardCounters()
        self.preparer = HostPreparer(
            tokenizer, classifier.cls_id, classifier.sep_id, classifier.pad_id
        )
        # Worker processes for the host's work: no GIL shared with the device thread's kernel
        # launches, and tokenization, chunking and packing spread over several cores. Spawned
        # (not forked): the parent may hold CUDA state and threads.
        self._pool = (
            ProcessPoolExecutor(
                max_workers=host_workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.preparer,),
            )
            if host_workers > 0
            else None
        )
        self.host_workers = host_workers

    def prepare(self, texts: list[str], detail: bool) -> PreparedWave:
        start = time.perf_counter()
        wave = self.preparer(texts, detail, self._forward_tokens(), self._pin)
        self.counters.prepare_s += time.perf_counter() - start
        return wave

    def prepare_async(self, texts: list[str], detail: bool) -> Future[PreparedWave]:
        """The prepared wave, from a worker process when there are some (then `finish` must
        be applied to it in this process), else prepared now."""
        if self._pool is not None:
            return self._pool.submit(_worker_prepare, texts, detail, self._forward_tokens())
        done: Future[PreparedWave] = Future()
        try:
            done.set_result(self.prepare(texts, detail))
        except Exception as exc:  # handed to the caller through the future
            done.set_exception(exc)
        return done

    def finish(self, wave: PreparedWave) -> PreparedWave:
        """A worker's wave as tensors in this process (pinned on CUDA)."""
        if self._pool is None:
            return wave
        start = time.perf_counter()
        wave = _map_tensors(wave, lambda a: host_tensor(a, self._pin))
        self.counters.prepare_s += time.perf_counter() - start
        return wave

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def launch(self, wave: PreparedWave, threshold: float) -> PendingWave:
        start = time.perf_counter()
        try:
            if self.device.type != "cuda":
                return self._launch(wave, threshold)
            # Kernels, streams and events follow the thread's current device, which is not
            # necessarily the engine's (cuda:1, ...) in the pipeline's device thread.
            with torch.cuda.device(self.device):
                return self._launch(wave, threshold)
        finally:
            self.counters.launch_s += time.perf_counter() - start

    def _launch(self, wave: PreparedWave, threshold: float) -> PendingWave:
        if wave.layout.n_word_tokens == 0:  # only empty texts: nothing for the model to do
            return PendingWave(wave.n_texts, wave.detail, wave.layout, _empty(wave.n_texts), None)
        res = self.classifier.run_batches(wave.batches, wave.layout.n_word_tokens)
        c = self.counters
        c.real += res.forward_tokens
        c.padded += sum(b.positions for b in wave.batches)
        c.forwards += len(wave.batches)
        cu = wave.offsets.to(self.device, non_blocking=True)
        if res.hidden is not None:
            out = significance_postprocess_fused(
                res.hidden, res.w_diff, res.b_diff, cu, threshold, validate=False
            )
        else:
            out = significance_postprocess(res.scores, cu, threshold, "logit_diff", validate=False)
        host, ready = _to_host(out, self._pin)
        return PendingWave(wave.n_texts, wave.detail, wave.layout, host, ready)

    def collect(self, wave: PendingWave) -> list[Counts] | list[UnitDetail]:
        start = time.perf_counter()
        try:
            return self._collect(wave)
        finally:
            self.counters.collect_s += time.perf_counter() - start

    def _collect(self, wave: PendingWave) -> list[Counts] | list[UnitDetail]:
        if wave.ready is not None:
            wave.ready.synchronize()  # waits without the GIL
        if not wave.detail:
            return counts(wave.out)
        lay = wave.layout
        tok = self.tokenizer
        pieces = [tok.tables.strip(t) for t in tok.tokens(lay.word_token_ids())]
        cu_words = lay.cu_words.tolist()
        words = ["".join(pieces[a:b]) for a, b in zip(cu_words[:-1], cu_words[1:], strict=True)]
        return details(wave.out, words, lay.cu_segments, lay.cu_samples)


def _empty(n: int) -> SignificanceOutput:
    zeros = torch.zeros(n, dtype=torch.int32)
    return SignificanceOutput(torch.zeros(0), zeros, zeros.clone())


def _to_host(
    out: SignificanceOutput, pinned: bool
) -> tuple[SignificanceOutput, torch.cuda.Event | None]:
    """The kernel's outputs on the host; on CUDA copied into pinned memory without waiting,
    with the event that marks the copy done."""
    if not pinned:
        return to_cpu(out), None

    def copy(t: torch.Tensor) -> torch.Tensor:
        host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        host.copy_(t, non_blocking=True)
        return host

    host = SignificanceOutput(copy(out.word_values), copy(out.significant), copy(out.insignificant))
    ready = torch.cuda.Event()
    ready.record()
    return host, ready


def to_cpu(out: SignificanceOutput) -> SignificanceOutput:
    return SignificanceOutput(out.word_values.cpu(), out.significant.cpu(), out.insignificant.cpu())


def counts(out: SignificanceOutput) -> list[Counts]:
    sig = out.significant.tolist()
    ins = out.insignificant.tolist()
    return [Counts(float(s), float(i)) for s, i in zip(sig, ins, strict=True)]


def details(
    out: SignificanceOutput,
    units: list[str],
    cu_segments: np.ndarray,
    cu_samples: np.ndarray,
) -> list[UnitDetail]:
    values = out.word_values.tolist()
    sig = out.significant.tolist()
    ins = out.insignificant.tolist()
    seg_sizes = np.diff(np.asarray(cu_segments)).tolist()
    result = []
    for n in range(len(sig)):
        g0, g1 = int(cu_samples[n]), int(cu_samples[n + 1])
        a, b = int(cu_segments[g0]), int(cu_segments[g1])
        chunks = [int(c) for c in seg_sizes[g0:g1]]
        result.append(UnitDetail(units[a:b], values[a:b], int(sig[n]), int(ins[n]), chunks))
    return result
