"""Model FLOP utilisation of the engine on an XLM-R-large-shaped classifier, serial vs pipelined.

The checkpoint is built locally (`tests/support/models.py:build_xlmr_shaped`): 24 layers,
hidden 1024, 16 heads, feed-forward 4096 by default, seeded random weights (speed does not
depend on the weights), with the real XLM-R tokenizer when its package is installed. The
same texts as bench_engine.py (`make_texts`) are scored by a serial and a pipelined engine in
calls of about `--max-batch-tokens` estimated tokens, as the service's batcher makes them (the
pipelined engine gets two calls at a time from two threads, as from the batcher).

`--compare-unpad` adds a pipelined engine on the unpadded forward
(service/engine/unpadded.py: GEMMs on attended positions only), with its counts against the
serial engine's.

FLOPs per chunk of L real positions (CLS and SEP included, padding never counted):
L * layers * (24 d^2 + 4 L d). Utilisation = FLOPs / wall seconds / peak, where the peak is
the bf16 throughput of a large matrix product measured on the same card just before. It also
prints the padded fraction of forward positions, and the utilisation the card would reach if
padding counted (what padding costs), and whether serial and pipelined counts are identical.

    python bench/bench_mfu.py --device cuda                        # on a GPU
    python bench/bench_mfu.py --device cpu --layers 2 --hidden 64 --texts 32   # a dry run
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_engine import make_texts, measure_bf16_peak, model_flops  # noqa: E402
from sigreward.engine import SignificanceEngine  # noqa: E402
from sigreward.engine.pipeline import split_waves  # noqa: E402


def calls_of(texts: list[str], budget: int) -> list[list[str]]:
    """Texts cut into calls as the batcher merges requests (about `budget` tokens each)."""
    return [texts[a:b] for a, b in split_waves(texts, budget)]


def timed(engine: SignificanceEngine, calls: list[list[str]], threshold: float,
          device: torch.device) -> tuple[float, list]:  # fmt: skip
    _sync(device)
    t0 = time.perf_counter()
    if engine.max_concurrent_calls > 1:
        with ThreadPoolExecutor(max_workers=engine.max_concurrent_calls) as pool:
            parts = list(pool.map(lambda c: engine.count_texts(c, threshold), calls))
    else:
        parts = [engine.count_texts(c, threshold) for c in calls]
    _sync(device)
    return time.perf_counter() - t0, [c for part in parts for c in part]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--layers", type=int, default=24)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--ffn", type=int, default=4096)
    p.add_argument("--texts", type=int, default=2048)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-batch-tokens", type=int, default=16384)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--model-cache", default="/tmp/sigreward-bench-models")
    p.add_argument("--host-workers", type=int, default=0,
                   help="add a pipelined engine preparing waves in this many processes")  # fmt: skip
    p.add_argument("--compare-unpad", action="store_true",
                   help="add a pipelined engine with the unpadded forward (unpadded.py)")  # fmt: skip
    args = p.parse_args(argv)

    from tests.support.models import cached_xlmr_shaped

    device = torch.device(args.device)
    model_dir = cached_xlmr_shaped(args.model_cache, args.layers, args.hidden, args.heads,
                                   args.ffn)  # fmt: skip
    texts = make_texts(args.texts, args.seed)
    variants = [("serial", False, False, 0), ("pipelined", True, False, 0)]
    if args.host_workers:
        variants.append((f"pipelined, {args.host_workers} host processes", True, False,
                         args.host_workers))  # fmt: skip
    if args.compare_unpad:
        variants.append(("pipelined, unpadded", True, True, args.host_workers))
    engines = {
        name: SignificanceEngine(
            str(model_dir),
            device=args.device,
            dtype=args.dtype,
            max_batch_tokens=args.max_batch_tokens,
            pipelined=piped,
            unpad=unpad,
            host_workers=workers,
        )
        for name, piped, unpad, workers in variants
    }
    for name, engine in engines.items():
        engine.forward_tokens = args.max_batch_tokens  # as on CUDA, also for a CPU dry run
        engine.warmup()
        if "unpadded" in name and not engine._classifier.unpadded:
            print(f"# {name}: the unpadded forward does not apply to this model")
    calls = calls_of(texts, args.max_batch_tokens)
    n_tokens = sum(engines["serial"].count_tokens(texts))
    flops = model_flops(engines["serial"], texts)

    best: dict[str, float] = {}
    counts: dict[str, list] = {}
    padded: dict[str, float] = {}
    for r in range(args.rounds):
        for name in list(engines) if r % 2 == 0 else list(engines)[::-1]:
            engine = engines[name]
            before = replace(engine.counters)
            seconds, counts[name] = timed(engine, calls, args.threshold, device)
            best[name] = min(best.get(name, float("inf")), seconds)
            after = engine.counters
            padded[name] = 1 - (after.real - before.real) / max(1, after.padded - before.padded)
    peak = measure_bf16_peak(device) if device.type == "cuda" else None
    for engine in engines.values():
        engine.close()

    print(f"# {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}  {platform.node()}")
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    print(f"# device {device} ({gpu}); torch {torch.__version__}; dtype {args.dtype}; "
          f"model {model_dir}")  # fmt: skip
    print(f"# command: python {' '.join(sys.argv)}")
    print(f"# {len(texts)} texts, {n_tokens} tokens, {len(calls)} calls of about "
          f"{args.max_batch_tokens} estimated tokens; {flops / 1e12:.2f} TFLOP on real "
          f"positions; best of {args.rounds} rounds")  # fmt: skip
    if peak is not None:
        print(f"# measured bf16 peak (8192^3 matmul): {peak / 1e12:.0f} TFLOP/s")
    else:
        print("# no CUDA device: no peak, so no utilisation (a dry run checks the rest)")
    if any(e._classifier.unpadded for e in engines.values()):
        print("# unpadded: padded positions enter the attention only, not the GEMMs")
    head = ("engine", "seconds", "tokens/s", "TFLOP/s (real positions)", "MFU",
            "padded positions", "MFU if padding counted", "counts = serial")  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    ok = True
    for name, seconds in best.items():
        rate = flops / seconds
        same = sum(a == b for a, b in zip(counts["serial"], counts[name], strict=True))
        ok &= same == len(texts)
        mfu = f"{rate / peak * 100:.1f}%" if peak else "-"
        # positions scale FLOPs roughly linearly (attention is a small part at L <= 512)
        if engines[name]._classifier.unpadded:  # GEMMs skip padding; only attention pads
            with_pad = "-"
        else:
            with_pad = f"{rate / (1 - padded[name]) / peak * 100:.1f}%" if peak else "-"
        print(f"| {name} | {seconds:.3f} | {n_tokens / seconds:.0f} | {rate / 1e12:.1f} | "
              f"{mfu} | {padded[name] * 100:.1f}% | {with_pad} | {same}/{len(texts)} |")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
