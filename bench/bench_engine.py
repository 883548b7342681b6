"""Engine vs the published LLMLingua-2 pipeline (minus HTTP), side by side.

Mixed-length English-like texts (lognormal word counts clipped to [20, 3000], seeded) are
scored by `SignificanceEngine.count_texts` (one call per `--slice` texts) and by
`bench/published_pipeline.py` (llmlingua 0.2.2's own code, one response per call), on the same checkpoint, device and
thread settings. Prints one table: texts, words, classifier tokens, seconds, texts/s,
tokens/s, the speed ratio against the reference, and how many texts got exactly the same
counts as the reference. On CUDA it adds model FLOP utilisation (docs/perf.md "Counting FLOPs", with
the bf16 peak measured here by a large matmul) and the post-processing kernel's GB/s.

    python bench/bench_engine.py --texts 96                      # CPU, MiniLM classifier
    python bench/bench_engine.py --device cuda --texts 2048      # GPU
    python bench/bench_engine.py --model DIR --also-bf16         # another checkpoint
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.published_pipeline import PublishedPipeline  # noqa: E402
from sigreward.engine import SignificanceEngine  # noqa: E402
from sigreward.engine.chunking import model_input_chunks  # noqa: E402
from sigreward.engine.layout import layout_chunks  # noqa: E402

WORDS = (
    "the of and to in is that it for as with was on be by this are or from at an which "
    "not have has but all can if we they one two three four five six seven eight nine ten "
    "first then next so therefore because since thus hence however wait let me check think "
    "step answer result number numbers sum product total value equation solve solution "
    "compute computed calculate add subtract multiply divide equals equal plus minus times "
    "problem question given find need know assume suppose consider case cases both each "
    "every other another same different correct wrong right mistake again maybe perhaps "
    "actually indeed clearly note notice recall remember verify verified double carefully "
    "angle triangle circle square area length width height side sides point points line "
    "probability chance event events outcome outcomes count counted choose ways possible "
    "prime factor factors divisible remainder modulo integer integers positive negative "
    "function derivative integral limit series sequence term terms ratio fraction percent "
    "hmm okay alright well now here there where when what how why who whose while until "
    "reasoning approach method strategy simplify simplified expand expanded substitute "
    "original final initial previous following known unknown variable variables constant "
    "unbelievable straightforward interesting significant insignificant important filler"
).split()


def make_texts(n: int, seed: int, median_words: float = 300.0, sigma: float = 1.0) -> list[str]:
    """English-like texts: sentences of 4-24 words, commas, numbers, paragraph breaks."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(math.log(median_words), sigma, size=n), 20, 3000).astype(int)
    vocab = np.array(WORDS)
    texts = []
    for n_words in lengths:
        out: list[str] = []
        sentence_left = int(rng.integers(4, 25))
        for i in range(int(n_words)):
            if rng.random() < 0.06:
                word = str(int(rng.integers(0, 1000)))
            else:
                word = str(vocab[rng.integers(0, vocab.shape[0])])
            if not out or out[-1].endswith((".", "\n")):
                word = word.capitalize()
            sentence_left -= 1
            if sentence_left == 0 or i == n_words - 1:
                word += "."
                sentence_left = int(rng.integers(4, 25))
                if rng.random() < 0.15:
                    word += "\n"
            elif rng.random() < 0.05:
                word += ","
            out.append(word)
        texts.append(" ".join(out).replace("\n ", "\n"))
    return texts


@dataclass
class Row:
    name: str
    texts: int
    words: int
    tokens: int
    seconds: float
    counts: list[tuple[int, int]]
    extra: str = ""


Scorer = Callable[[list[str]], list[tuple[int, int]]]


def engine_scorer(engine: SignificanceEngine, threshold: float) -> Scorer:
    def score(texts: list[str]) -> list[tuple[int, int]]:
        return [(int(c.significant), int(c.insignificant))
                for c in engine.count_texts(texts, threshold)]  # fmt: skip

    return score


def reference_scorer(ref: PublishedPipeline, threshold: float) -> Scorer:
    def score(texts: list[str]) -> list[tuple[int, int]]:
        return [ref.count(t, threshold) for t in texts]

    return score


def time_interleaved(scorers: dict[str, Scorer], texts: list[str], slice_size: int,
                     rounds: int, device: torch.device) -> dict[str, tuple[float, list]]:  # fmt: skip
    """Seconds and counts per pipeline: the sum over slices of each slice's best round.

    Every slice of texts is timed on every pipeline back to back (the order rotates), in
    `rounds` rounds, so a busy neighbour on a shared machine slows a slice of every pipeline
    rather than all of one pipeline, and each slice keeps its least disturbed time.
    """
    names = list(scorers)
    slices = [texts[i : i + slice_size] for i in range(0, len(texts), slice_size)]
    best = {n: [math.inf] * len(slices) for n in names}
    counts: dict[str, list[list]] = {n: [[] for _ in slices] for n in names}
    for r in range(rounds):
        for k, part in enumerate(slices):
            shift = (r + k) % len(names)
            for n in names[shift:] + names[:shift]:
                _sync(device)
                t0 = time.perf_counter()
                counts[n][k] = scorers[n](part)
                _sync(device)
                best[n][k] = min(best[n][k], time.perf_counter() - t0)
    return {n: (sum(best[n]), [c for part in counts[n] for c in part]) for n in names}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_flops(engine: SignificanceEngine, texts: list[str], padded_to: int = 0) -> float:
    """docs/perf.md "Counting FLOPs": sum over chunks of L * n * (24 d^2 + 4 L d), real tokens only.

    With `padded_to`, every chunk is counted as that many positions instead (what a pipeline
    that pads each chunk computes), for the padding ceiling in the table's header.
    """
    tok = engine._tokenizer
    cfg = engine._classifier.model.config
    d, n_layers = int(cfg.hidden_size), int(cfg.num_hidden_layers)
    lay = layout_chunks(model_input_chunks(tok, texts), tok.tables)
    lengths = (lay.chunk_end - lay.chunk_start + 2).astype(np.float64)  # CLS + SEP are real
    if padded_to:
        lengths = np.full_like(lengths, float(padded_to))
    return float(np.sum(lengths * n_layers * (24 * d * d + 4 * lengths * d)))


def measure_bf16_peak(device: torch.device, n: int = 8192, iters: int = 20) -> float:
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        a @ b
    torch.cuda.synchronize(device)
    return 2 * n**3 * iters / (time.perf_counter() - t0)


def kernel_bandwidth(engine: SignificanceEngine, texts: list[str], threshold: float) -> str:
    """GB/s of the fused post-processing alone, on the word layout of these texts."""
    from sigreward.kernels import RaggedOffsets, kernel_backend, significance_postprocess_fused

    tok = engine._tokenizer
    clf = engine._classifier
    dev = engine._device
    lay = layout_chunks(model_input_chunks(tok, texts), tok.tables)
    t, d = lay.n_word_tokens, clf.hidden_size
    hidden = torch.randn(t, d, device=dev, dtype=torch.bfloat16)
    w = torch.randn(d, device=dev)
    cu = RaggedOffsets(
        *(torch.from_numpy(a).to(dev) for a in (lay.cu_words, lay.cu_segments, lay.cu_samples))
    )
    for _ in range(3):
        significance_postprocess_fused(hidden, w, 0.0, cu, threshold)
    torch.cuda.synchronize(dev)
    iters = 20
    t0 = time.perf_counter()
    for _ in range(iters):
        significance_postprocess_fused(hidden, w, 0.0, cu, threshold, validate=False)
    torch.cuda.synchronize(dev)
    sec = (time.perf_counter() - t0) / iters
    n_words = lay.cu_words.shape[0] - 1
    moved = hidden.numel() * 2 + d * 4 + sum(c.numel() * 4 for c in cu) + n_words * 4
    return f"{kernel_backend(dev)}: {moved / sec / 1e9:.1f} GB/s ({sec * 1e3:.3f} ms, {t} tokens)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--texts", type=int, default=96, help="number of texts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--median-words", type=float, default=300.0)
    p.add_argument("--model", type=str, default=None,
                   help="checkpoint dir (default: MiniLM classifier built locally)")  # fmt: skip
    p.add_argument("--model-cache", type=str, default="/tmp/sigreward-bench-models")
    p.add_argument("--device", type=str, default="cpu")
    p.add_argument("--dtype", type=str, default="auto", help="engine dtype (reference is fp32)")
    p.add_argument("--also-bf16", action="store_true", help="add an engine row in bf16")
    p.add_argument("--max-batch-tokens", type=int, default=16384)
    p.add_argument("--slice", type=int, default=16,
                   help="texts per timed slice (one engine call per slice)")  # fmt: skip
    p.add_argument("--compare-forward-tokens", type=int, default=0,
                   help="add an engine row with this many padded positions per forward")  # fmt: skip
    p.add_argument("--compare-transformers-forward", action="store_true",
                   help="add an engine row that runs transformers' forward instead of the "
                        "fused oneDNN CPU encoder (service/engine/cpu_encoder.py)")  # fmt: skip
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--skip-reference", action="store_true")
    p.add_argument("--rounds", type=int, default=2, help="rounds; each slice keeps its best")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir = args.model
    if model_dir is None:
        from tests.support.models import cached_model

        model_dir = str(cached_model("minilm", args.model_cache))
    device = torch.device(args.device)
    texts = make_texts(args.texts, args.seed, args.median_words)

    engine = SignificanceEngine(model_dir, device=args.device, dtype=args.dtype,
                                max_batch_tokens=args.max_batch_tokens)  # fmt: skip
    engine.warmup()
    n_words = sum(len(t.split()) for t in texts)
    n_tokens = sum(engine.count_tokens(texts))
    scorers: dict[str, Scorer] = {}
    if not args.skip_reference:
        ref = PublishedPipeline(Path(model_dir), engine.word_family, device=args.device)
        ref.count(texts[0], args.threshold)  # warm-up
        scorers["published llmlingua 0.2.2 (fp32)"] = reference_scorer(ref, args.threshold)
    main_name = f"engine ({engine.dtype})"
    scorers[main_name] = engine_scorer(engine, args.threshold)
    if args.also_bf16 and engine.dtype != "bf16":
        bf = SignificanceEngine(model_dir, device=args.device, dtype="bf16",
                                max_batch_tokens=args.max_batch_tokens)  # fmt: skip
        bf.warmup()
        scorers["engine (bf16)"] = engine_scorer(bf, args.threshold)
    if args.compare_forward_tokens:
        alt = SignificanceEngine(model_dir, device=args.device, dtype=args.dtype,
                                 max_batch_tokens=args.max_batch_tokens)  # fmt: skip
        alt.forward_tokens = args.compare_forward_tokens
        alt.warmup()
        name = f"engine ({alt.dtype}, {alt.forward_tokens} positions/forward)"
        scorers[name] = engine_scorer(alt, args.threshold)
    if args.compare_transformers_forward:
        plain = SignificanceEngine(model_dir, device=args.device, dtype=args.dtype,
                                   max_batch_tokens=args.max_batch_tokens)  # fmt: skip
        plain._classifier._fast = None  # transformers' forward, same batches
        plain.warmup()
        name = f"engine ({plain.dtype}, transformers forward)"
        scorers[name] = engine_scorer(plain, args.threshold)
    load_before = os.getloadavg()
    timed = time_interleaved(scorers, texts, args.slice, args.rounds, device)
    args.load = (load_before, os.getloadavg())
    rows = [Row(n, len(texts), n_words, n_tokens, sec, c) for n, (sec, c) in timed.items()]

    main = next(r for r in rows if r.name == main_name)
    if device.type == "cuda":
        peak = measure_bf16_peak(device)
        flops = model_flops(engine, texts)
        main.extra = (f"MFU {flops / main.seconds / peak * 100:.1f}% (peak {peak / 1e12:.0f} "
                      f"TFLOP/s, {flops / 1e12:.2f} TFLOP); kernel "
                      f"{kernel_bandwidth(engine, texts, args.threshold)}")  # fmt: skip
    for r in rows:
        if r.name == "engine (bf16)" and r is not main:
            drift = sum(abs(a[0] - b[0]) for a, b in zip(main.counts, r.counts, strict=True))
            total = sum(a[0] + a[1] for a in main.counts)
            same = sum(a == b for a, b in zip(main.counts, r.counts, strict=True))
            r.extra = (f"vs {main.name}: {same}/{r.texts} texts same counts, {drift} of "
                       f"{total} words moved ({drift / max(total, 1) * 100:.2f}%)")  # fmt: skip

    print_table(rows, args, engine, model_dir)
    real, padded = model_flops(engine, texts), model_flops(engine, texts, padded_to=512)
    print(f"# model FLOPs of these texts: {real / 1e12:.3f} TFLOP on real "
          f"positions, {padded / 1e12:.3f} TFLOP with every chunk padded to 512: padding alone "
          f"accounts for {padded / real:.2f}x")  # fmt: skip
    print(retokenization_cost(engine, texts, main.seconds))
    return 0


def retokenization_cost(engine: SignificanceEngine, texts: list[str], engine_seconds: float) -> str:
    """Host time of the first tokenization vs the chunks' detokenize + second tokenization."""
    from sigreward.engine.chunking import chunk_spans

    tok = engine._tokenizer
    t0 = time.perf_counter()
    encoded = tok.encode(texts)
    t1 = time.perf_counter()
    chunk_texts = [
        tok.detokenize(tokens[s:e])
        for ids, tokens in encoded
        for s, e in chunk_spans(tok.tables.chunk_end[ids])
    ]
    tok.ids(chunk_texts)
    t2 = time.perf_counter()
    return (f"# host: first tokenization {t1 - t0:.3f} s, chunks detokenized and tokenized again "
            f"{t2 - t1:.3f} s ({(t2 - t1) / engine_seconds * 100:.2f}% of the engine's "
            f"{engine_seconds:.2f} s)")  # fmt: skip


def print_table(rows: list[Row], args: argparse.Namespace, engine: SignificanceEngine,
                model_dir: str) -> None:  # fmt: skip
    base = rows[0] if not args.skip_reference else None
    cpu = _cpu_name()
    print(f"# {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}  {platform.node()}")
    print(f"# cpu: {cpu}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"device {engine.device}; model {model_dir}; kernel backend {engine.kernel_backend}; "
          f"encoder {_encoder_name(engine)}")  # fmt: skip
    (b1, b5, _), (a1, a5, _) = args.load
    print(f"# load average (1 min / 5 min) before {b1:.2f} / {b5:.2f}, after {a1:.2f} / {a5:.2f} "
          f"on {os.cpu_count()} CPUs (shared: other work runs beside this one)")  # fmt: skip
    print(
        f"# command: python {' '.join(sys.argv)}  "
        f"(per slice of {args.slice} texts the best of {args.rounds} interleaved rounds)"
    )
    head = ("pipeline", "texts", "words", "tokens", "seconds", "texts/s", "tokens/s", "ratio",
            "counts = reference")  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        ratio = f"{base.seconds / r.seconds:.2f}x" if base else "-"
        if base is None:
            agree = "-"
        else:
            same = sum(a == b for a, b in zip(base.counts, r.counts, strict=True))
            moved = sum(abs(a[0] - b[0]) for a, b in zip(base.counts, r.counts, strict=True))
            agree = f"{same}/{r.texts} texts ({moved} words differ)"
        print(f"| {r.name} | {r.texts} | {r.words} | {r.tokens} | {r.seconds:.2f} | "
              f"{r.texts / r.seconds:.2f} | {r.tokens / r.seconds:.0f} | {ratio} | {agree} |")  # fmt: skip
    for r in rows:
        if r.extra:
            print(f"# {r.name}: {r.extra}")


def _encoder_name(engine: SignificanceEngine) -> str:
    """Which forward the engine's classifier runs (service/engine/cpu_encoder.py)."""
    clf = engine._classifier
    return "oneDNN fused (cpu_encoder.py)" if clf is not None and clf.onednn else "transformers"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
