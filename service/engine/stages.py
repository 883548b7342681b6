"""The engine's three stages on one wave of texts (see service/engine/pipeline.py).

prepare runs on the host only; launch queues the device work (forwards, post-processing
kernel, copy of the results to pinned host memory) and returns without waiting for it on
CUDA; collect waits for that copy and builds the per-text results.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from kernels.dispatch import significance_postprocess, significance_postprocess_fused
from kernels.reference import SignificanceOutput, check_offsets
from service.engine.chunking import model_input_chunks
from service.engine.classifier import ChunkClassifier
from service.engine.layout import TextsLayout, layout_chunks
from service.engine.packing import ForwardBatch, host_tensor
from service.engine.tokenization import TextTokenizer
from service.types import Counts, UnitDetail

_CPU = torch.device("cpu")


@dataclass
class PreparedWave:
    n_texts: int
    detail: bool
    layout: TextsLayout
    batches: list[ForwardBatch]
    offsets: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # cu_words/segments/samples


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


class TextStages:
    def __init__(
        self,
        tokenizer: TextTokenizer,
        classifier: ChunkClassifier,
        device: torch.device,
        forward_tokens: Callable[[], int],
    ) -> None:
        self.tokenizer = tokenizer
        self.classifier = classifier
        self.device = device
        self._forward_tokens = forward_tokens
        # Pinned host buffers make the copies to and from the GPU asynchronous.
        self._pin = device.type == "cuda"
        self.counters = ForwardCounters()

    def prepare(self, texts: list[str], detail: bool) -> PreparedWave:
        start = time.perf_counter()
        tok = self.tokenizer
        layout = layout_chunks(model_input_chunks(tok, texts), tok.tables)
        batches = self.classifier.pack(layout, self._forward_tokens(), self._pin)
        offsets = tuple(
            host_tensor(a, self._pin)
            for a in (layout.cu_words, layout.cu_segments, layout.cu_samples)
        )
        # Checked here, on the host, so the device path needs no synchronising check.
        check_offsets(layout.n_word_tokens, *offsets, _CPU)
        self.counters.prepare_s += time.perf_counter() - start
        return PreparedWave(len(texts), detail, layout, batches, offsets)  # type: ignore[arg-type]

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
        cu = [t.to(self.device, non_blocking=True) for t in wave.offsets]
        if res.hidden is not None:
            out = significance_postprocess_fused(
                res.hidden, res.w_diff, res.b_diff, *cu, threshold, validate=False
            )
        else:
            out = significance_postprocess(res.scores, *cu, threshold, "logit_diff", validate=False)
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
    return SignificanceOutput(torch.zeros(0), zeros, zeros.clone(), None)


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

    host = SignificanceOutput(
        copy(out.word_values),
        copy(out.significant),
        copy(out.insignificant),
        None if out.length_reward is None else copy(out.length_reward),
    )
    ready = torch.cuda.Event()
    ready.record()
    return host, ready


def to_cpu(out: SignificanceOutput) -> SignificanceOutput:
    return SignificanceOutput(
        out.word_values.cpu(),
        out.significant.cpu(),
        out.insignificant.cpu(),
        None if out.length_reward is None else out.length_reward.cpu(),
    )


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
