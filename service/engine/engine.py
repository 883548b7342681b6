"""SignificanceEngine: the facade the service calls (docs/architecture.md, "Engine")."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from sigreward.domain.results import Counts, UnitDetail
from sigreward.engine.chunking import MAX_CHUNK_TOKENS, WINDOW_POSITIONS
from sigreward.engine.classifier import ChunkClassifier
from sigreward.engine.device import DTYPE_NAMES, resolve_device, resolve_dtype
from sigreward.engine.errors import NoModelError
from sigreward.engine.loader import load_token_classifier
from sigreward.engine.pipeline import PipelinedExecutor, SerialExecutor
from sigreward.engine.stages import ForwardCounters, TextStages, counts, details, to_cpu
from sigreward.engine.tokenization import TextTokenizer
from sigreward.engine.values import check_threshold, layout_values
from sigreward.kernels.contract import SignificanceOutput
from sigreward.kernels.dispatch import kernel_backend as _kernel_backend
from sigreward.kernels.dispatch import significance_postprocess

CPU_FORWARD_TOKENS = WINDOW_POSITIONS


class SignificanceEngine:
    """Significance counts of response texts (token classifier) or of client-supplied values.

    Synchronous, and any thread may call it. Texts run through the stages of
    service/engine/stages.py, wave by wave: in series under a lock, or pipelined (the default
    on CUDA; service/engine/pipeline.py), where concurrent calls queue up in order and the
    host prepares the next wave while the device runs the current one. Both give identical
    results. Torch's global settings (threads, seeds) are left as the process configured them.
    """

    def __init__(
        self,
        model: str | None,
        device: str = "auto",
        dtype: str = "auto",
        max_batch_tokens: int = 16384,
        pipelined: bool | None = None,
        unpad: bool = False,
        host_workers: int = 0,
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
        self._values_lock = threading.Lock()
        self._tokenizer: TextTokenizer | None = None
        self._classifier: ChunkClassifier | None = None
        self._stages: TextStages | None = None
        self._texts: SerialExecutor | PipelinedExecutor | None = None
        # Pipelined (host work hidden behind the device's) by default where there is a device
        # to hide it behind; on the CPU the model and the host share the same cores.
        self.pipelined = self._device.type == "cuda" if pipelined is None else bool(pipelined)
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
                unpad=unpad,
            )
            # host_workers > 0: the pipelined engine prepares waves in that many processes.
            self._stages = TextStages(
                self._tokenizer,
                self._classifier,
                self._device,
                lambda: self.forward_tokens,
                host_workers=host_workers if self.pipelined else 0,
            )
            # A call is cut into waves of about one batch budget: the unit that the pipeline
            # overlaps (the host prepares one wave while the device runs the one before).
            executor = PipelinedExecutor if self.pipelined else SerialExecutor
            self._texts = executor(self._stages, max_batch_tokens)

    @property
    def max_concurrent_calls(self) -> int:
        """How many calls a caller should keep in flight to keep the device busy (the batcher
        reads it): a pipelined engine prepares the next call while it runs this one."""
        return 2 if self.pipelined else 1

    @property
    def counters(self) -> ForwardCounters:
        """Real and padded positions run through the model so far (FLOPs, padded fraction)."""
        return self._stages.counters if self._stages is not None else ForwardCounters()

    def close(self) -> None:
        """Stop the pipeline's threads (and host worker processes) once the calls already made
        are done."""
        if self._texts is not None:
            self._texts.close()
        if self._stages is not None:
            self._stages.close()

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
        return self._run_texts(texts, threshold, detail=False)

    def count_values(self, values: list[list[float]], threshold: float) -> list[Counts]:
        return counts(self._score_values(values, threshold))

    def inspect_texts(self, texts: list[str], threshold: float) -> list[UnitDetail]:
        return self._run_texts(texts, threshold, detail=True)

    def inspect_values(self, values: list[list[float]], threshold: float) -> list[UnitDetail]:
        out = self._score_values(values, threshold)
        units = [str(i) for v in values for i in range(len(v))]
        n = len(values)
        cu = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(v) for v in values], out=cu[1:])
        return details(out, units, cu, np.arange(n + 1))

    # --- internals -------------------------------------------------------------------------

    def _require_model(self) -> tuple[TextTokenizer, ChunkClassifier]:
        if self._tokenizer is None or self._classifier is None:
            raise NoModelError()
        return self._tokenizer, self._classifier

    def _run_texts(self, texts: list[str], threshold: float, detail: bool) -> list[Any]:
        threshold = check_threshold(threshold)
        self._require_model()
        assert self._texts is not None
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"texts[{i}] must be a string, got {type(t).__name__}")
        return self._texts.run(texts, threshold, detail)

    def _score_values(self, values: list[list[float]], threshold: float) -> SignificanceOutput:
        threshold = check_threshold(threshold)
        lay = layout_values(values)
        dev = self._device
        with self._values_lock:
            # float64 scores: values mode normalises and compares in float64 on both backends
            out = significance_postprocess(
                lay.scores.to(dev), lay.offsets.to(dev), threshold, "values"
            )
            return to_cpu(out)
