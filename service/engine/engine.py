"""SignificanceEngine: the facade the service calls (docs/architecture.md, "Engine")."""

from __future__ import annotations

import threading

import numpy as np
import torch

from kernels.dispatch import kernel_backend as _kernel_backend
from kernels.dispatch import significance_postprocess, significance_postprocess_fused
from kernels.reference import SignificanceOutput
from service.engine.chunking import MAX_CHUNK_TOKENS, WINDOW_POSITIONS, model_input_chunks
from service.engine.classifier import ChunkClassifier
from service.engine.device import DTYPE_NAMES, resolve_device, resolve_dtype
from service.engine.errors import NoModelError
from service.engine.layout import TextsLayout, layout_chunks
from service.engine.loader import load_token_classifier
from service.engine.tokenization import TextTokenizer
from service.engine.values import check_threshold, layout_values
from service.types import Counts, UnitDetail

CPU_FORWARD_TOKENS = WINDOW_POSITIONS


class SignificanceEngine:
    """Significance counts of response texts (token classifier) or of client-supplied values.

    Synchronous. Calls are serialised by an internal lock, so any thread may call it; the
    service's batcher runs it in a worker thread. Torch's global settings (threads, seeds)
    are left as the process configured them.
    """

    def __init__(
        self,
        model: str | None,
        device: str = "auto",
        dtype: str = "auto",
        max_batch_tokens: int = 16384,
    ) -> None:
        if max_batch_tokens < WINDOW_POSITIONS:
            raise ValueError(
                f"max_batch_tokens must be at least {WINDOW_POSITIONS} (one full chunk), "
                f"got {max_batch_tokens}"
            )
        self._device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, self._device)
        self.model_name: str | None = model
        self.device: str = str(self._device)
        self.dtype: str = DTYPE_NAMES[torch_dtype]
        self.kernel_backend: str = _kernel_backend(self._device)
        self.max_batch_tokens = max_batch_tokens
        # Padded positions per forward: the whole budget on CUDA; on the CPU at most
        # CPU_FORWARD_TOKENS (one full window), because there larger forwards measured slower
        # per position (docs/perf.md).
        self.forward_tokens = (
            max_batch_tokens
            if self._device.type == "cuda"
            else min(max_batch_tokens, CPU_FORWARD_TOKENS)
        )
        self._lock = threading.Lock()
        self._tokenizer: TextTokenizer | None = None
        self._classifier: ChunkClassifier | None = None
        if model is not None:
            loaded = load_token_classifier(model, self._device, torch_dtype)
            self._tokenizer = TextTokenizer(loaded.tokenizer)
            self._classifier = ChunkClassifier(
                loaded.model,
                loaded.tokenizer,
                self._tokenizer.tables,
                self._device,
                # The Triton kernel applies the head itself (on CUDA, or interpreted on the CPU
                # in tests); the torch path gets the logit differences.
                fused=self.kernel_backend == "triton",
            )
        self.last_forward_tokens = 0  # real positions of the last texts call (for FLOP counts)

    @property
    def has_model(self) -> bool:
        return self._classifier is not None

    @property
    def word_family(self) -> str | None:
        """ "wordpiece" or "sentencepiece" (how word starts are detected), None without a model."""
        return self._tokenizer.tables.family if self._tokenizer is not None else None

    # --- public API ------------------------------------------------------------------------

    def warmup(self) -> None:
        """One small and one full-window forward, and one values call (compiles kernels)."""
        self.count_values([[0.0, 1.0, 0.5]], 0.5)
        if self.has_model:
            self.count_texts(["Warm up.", "word " * (2 * MAX_CHUNK_TOKENS)], 0.5)

    def count_tokens(self, texts: list[str]) -> list[int]:
        tok = self._require_model()[0]
        return [int(a.shape[0]) for a in tok.ids(list(texts))]

    def count_texts(self, texts: list[str], threshold: float) -> list[Counts]:
        out, _ = self._score_texts(texts, threshold)
        return _counts(out)

    def count_values(self, values: list[list[float]], threshold: float) -> list[Counts]:
        return _counts(self._score_values(values, threshold))

    def inspect_texts(self, texts: list[str], threshold: float) -> list[UnitDetail]:
        out, layout = self._score_texts(texts, threshold)
        tok = self._require_model()[0]
        pieces = [tok.tables.strip(t) for t in tok.tokens(layout.word_token_ids())]
        cu_words = layout.cu_words.tolist()
        words = ["".join(pieces[a:b]) for a, b in zip(cu_words[:-1], cu_words[1:], strict=True)]
        return _details(out, words, layout.cu_segments, layout.cu_samples)

    def inspect_values(self, values: list[list[float]], threshold: float) -> list[UnitDetail]:
        out = self._score_values(values, threshold)
        units = [str(i) for v in values for i in range(len(v))]
        n = len(values)
        cu = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(v) for v in values], out=cu[1:])
        return _details(out, units, cu, np.arange(n + 1))

    # --- internals -------------------------------------------------------------------------

    def _require_model(self) -> tuple[TextTokenizer, ChunkClassifier]:
        if self._tokenizer is None or self._classifier is None:
            raise NoModelError()
        return self._tokenizer, self._classifier

    def _score_texts(
        self, texts: list[str], threshold: float
    ) -> tuple[SignificanceOutput, TextsLayout]:
        threshold = check_threshold(threshold)
        tok, clf = self._require_model()
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"texts[{i}] must be a string, got {type(t).__name__}")
        with self._lock:
            layout = layout_chunks(model_input_chunks(tok, texts), tok.tables)
            res = clf.run(layout, self.forward_tokens)
            self.last_forward_tokens = res.forward_tokens
            dev = self._device
            cu = [
                torch.from_numpy(a).to(dev)
                for a in (layout.cu_words, layout.cu_segments, layout.cu_samples)
            ]
            if layout.n_word_tokens == 0:  # only empty texts: nothing for the kernel to do
                out = _empty_output(len(texts))
            elif res.hidden is not None:
                out = significance_postprocess_fused(
                    res.hidden, res.w_diff, res.b_diff, *cu, threshold
                )
            else:
                out = significance_postprocess(res.scores, *cu, threshold, "logit_diff")
            return _to_cpu(out), layout

    def _score_values(self, values: list[list[float]], threshold: float) -> SignificanceOutput:
        threshold = check_threshold(threshold)
        lay = layout_values(values)
        dev = self._device
        with self._lock:
            # float64 scores: values mode normalises and compares in float64 on both backends
            out = significance_postprocess(
                lay.scores.to(dev),
                lay.cu_words.to(dev),
                lay.cu_segments.to(dev),
                lay.cu_samples.to(dev),
                threshold,
                "values",
            )
            return _to_cpu(out)


def _empty_output(n: int) -> SignificanceOutput:
    zeros = torch.zeros(n, dtype=torch.int32)
    return SignificanceOutput(torch.zeros(0), zeros, zeros.clone())


def _to_cpu(out: SignificanceOutput) -> SignificanceOutput:
    return SignificanceOutput(out.word_values.cpu(), out.significant.cpu(), out.insignificant.cpu())


def _counts(out: SignificanceOutput) -> list[Counts]:
    sig = out.significant.tolist()
    ins = out.insignificant.tolist()
    return [Counts(float(s), float(i)) for s, i in zip(sig, ins, strict=True)]


def _details(
    out: SignificanceOutput,
    units: list[str],
    cu_segments: np.ndarray,
    cu_samples: np.ndarray,
) -> list[UnitDetail]:
    values = out.word_values.tolist()
    sig = out.significant.tolist()
    ins = out.insignificant.tolist()
    seg_sizes = np.diff(np.asarray(cu_segments)).tolist()
    details = []
    for n in range(len(sig)):
        g0, g1 = int(cu_samples[n]), int(cu_samples[n + 1])
        a, b = int(cu_segments[g0]), int(cu_segments[g1])
        chunks = [int(c) for c in seg_sizes[g0:g1]]
        details.append(UnitDetail(units[a:b], values[a:b], int(sig[n]), int(ins[n]), chunks))
    return details
