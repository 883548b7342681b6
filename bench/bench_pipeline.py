"""Serial vs pipelined engine on a simulated device: is the host's work hidden?

The encoder forward is replaced by `sigreward.engine.simulated.SimulatedEncoder`: it takes a
set time per forward position (padding included) in `time.sleep`, without the GIL, as a
CUDA forward leaves the host free, and returns hidden states derived from the token ids, so
every count is checkable. Everything else (tokenization, chunking, layout, packing, the real
2-label head, the post-processing, results) is the engine's real code on the CPU.

1. Host time: the serial engine with a zero-time device; host = wall - time inside the
   stand-in (its own table lookup counts as device time).
2. The device's time per position is then set so that device time = `--device-ratio` x host
   time on these texts (1.0: "similar", where overlap matters most).
3. Serial and pipelined engines score the same texts, in `--rounds` interleaved rounds (each
   keeps its best round); both get `--slice` texts per call (0: one call with every text),
   the pipelined one from two threads as the service's batcher calls it.

Prints host, device and wall seconds per engine, wall / max(host, device) (1.00 is perfect
overlap) and wall / (host + device) (1.00 is none), whether both engines gave identical
counts, and the padded fraction of forward positions.

    python bench/bench_pipeline.py --texts 256 --rounds 3
    python bench/bench_pipeline.py --device-ratio 0.5,1,2
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_engine import _cpu_name, make_texts  # noqa: E402
from sigreward.engine import SignificanceEngine  # noqa: E402
from sigreward.engine.pipeline import split_waves  # noqa: E402
from sigreward.engine.simulated import simulate_device  # noqa: E402


@dataclass
class Run:
    wall: float
    host: float  # seconds in the host stages: prepare + collect
    device: float  # seconds in the device stage (launch: the stand-in's wait, head, kernel)
    counts: list[tuple[float, float]]


def score(engine: SignificanceEngine, texts: list[str], slice_size: int,
          threshold: float) -> Run:  # fmt: skip
    calls = [texts] if slice_size <= 0 else [
        texts[i : i + slice_size] for i in range(0, len(texts), slice_size)]  # fmt: skip
    before = replace(engine.counters)
    t0 = time.perf_counter()
    if engine.max_concurrent_calls > 1:
        with ThreadPoolExecutor(max_workers=engine.max_concurrent_calls) as pool:
            parts = list(pool.map(lambda c: engine.count_texts(c, threshold), calls))
    else:
        parts = [engine.count_texts(c, threshold) for c in calls]
    wall = time.perf_counter() - t0
    after = engine.counters
    host = (after.prepare_s - before.prepare_s) + (after.collect_s - before.collect_s)
    counts = [(c.significant, c.insignificant) for part in parts for c in part]
    return Run(wall, host, after.launch_s - before.launch_s, counts)


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: r.wall)


def padding_table(model_dir: str, texts: list[str], budgets: list[int]) -> int:
    """Padded fraction of forward positions per batch budget (forwards as large as on CUDA)."""
    print(f"# {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}  {platform.node()}")
    print(f"# command: python {' '.join(sys.argv)}")
    print(f"# {len(texts)} texts; model {model_dir}; calls of about the budget in estimated "
          "tokens (as the batcher merges requests), forwards of up to the budget in positions")  # fmt: skip
    print("| budget | forwards | real positions | padded positions | padding |")
    print("|---|---|---|---|---|")
    for budget in budgets:
        engine = SignificanceEngine(model_dir, device="cpu", max_batch_tokens=budget,
                                    pipelined=False)  # fmt: skip
        engine.forward_tokens = budget
        simulate_device(engine, 0.0)
        for a, b in split_waves(texts, budget):
            engine.count_texts(texts[a:b], 0.5)
        c = engine.counters
        print(f"| {budget} | {c.forwards} | {c.real} | {c.padded} | "
              f"{c.padded_fraction * 100:.1f}% |")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--texts", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--median-words", type=float, default=300.0)
    p.add_argument("--model", type=str, default=None,
                   help="checkpoint dir for the tokenizer and head (default: MiniLM's tokenizer "
                        "on a tiny encoder, built locally)")  # fmt: skip
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1: the device stage's CPU work, which a GPU "
                        "would do, takes one core; 0: torch's default)")  # fmt: skip
    p.add_argument("--model-cache", type=str, default="/tmp/sigreward-bench-models")
    p.add_argument("--max-batch-tokens", type=int, default=4096,
                   help="positions per forward and estimated tokens per wave, as on CUDA")  # fmt: skip
    p.add_argument("--device-ratio", type=str, default="1",
                   help="device time / host time, comma-separated for several runs")  # fmt: skip
    p.add_argument("--slice", type=int, default=0, help="texts per call (0: one call)")
    p.add_argument("--host-workers", type=int, default=0,
                   help="add a pipelined engine preparing waves in this many processes")  # fmt: skip
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--padding-only", type=str, default="",
                   help="comma-separated batch budgets: print the padded fraction of forward "
                        "positions for each (calls cut as the batcher cuts them) and stop")  # fmt: skip
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir = args.model
    if model_dir is None:
        from tests.support.models import build_minilm_tokenizer_tiny_encoder

        model_dir = str(build_minilm_tokenizer_tiny_encoder(
            Path(args.model_cache) / "minilm-tokenizer-tiny-encoder-seed0"))  # fmt: skip
    texts = make_texts(args.texts, args.seed, args.median_words)
    if args.padding_only:
        return padding_table(model_dir, texts, [int(b) for b in args.padding_only.split(",")])
    engines = {}
    variants = [("serial", False, 0), ("pipelined", True, 0)]
    if args.host_workers:
        variants.append((f"pipelined, {args.host_workers} host processes", True,
                         args.host_workers))  # fmt: skip
    for name, pipelined, workers in variants:
        engine = SignificanceEngine(model_dir, device="cpu", max_batch_tokens=args.max_batch_tokens,
                                    pipelined=pipelined, host_workers=workers)  # fmt: skip
        engine.forward_tokens = args.max_batch_tokens  # CUDA-sized forwards
        engines[name] = (engine, simulate_device(engine, 0.0))
    n_tokens = sum(engines["serial"][0].count_tokens(texts))

    # 1. host time, and the device stage's own CPU work, with a forward that takes no time
    serial, stand_in = engines["serial"]
    for engine, _ in engines.values():  # warm-up: every text once (allocator, caches)
        score(engine, texts, args.slice, args.threshold)
    stand_in.reset()
    padded_before = replace(serial.counters)
    zero = best([score(serial, texts, args.slice, args.threshold) for _ in range(args.rounds)])
    positions = stand_in.positions // args.rounds
    done = serial.counters
    padded = 1 - (done.real - padded_before.real) / (done.padded - padded_before.padded)

    load_before = os.getloadavg()
    results = []
    for ratio in [float(r) for r in args.device_ratio.split(",")]:
        # the forward's wait makes the device stage take `ratio` times the host stages
        per_position = max(0.0, ratio * zero.host - zero.device) / positions
        for _, sim in engines.values():
            sim.seconds_per_position = per_position
        runs: dict[str, list[Run]] = {name: [] for name in engines}
        for r in range(args.rounds):
            order = list(engines) if r % 2 == 0 else list(engines)[::-1]
            for name in order:
                runs[name].append(score(engines[name][0], texts, args.slice, args.threshold))
        results.append((ratio, {n: best(v) for n, v in runs.items()}))
    load_after = os.getloadavg()
    for engine, _ in engines.values():
        engine.close()

    print(f"# {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}  {platform.node()}")
    print(f"# cpu: {_cpu_name()}, {os.cpu_count()} CPUs; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; model {model_dir} (tokenizer and head; the "
          f"encoder is simulated)")  # fmt: skip
    print(f"# load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"# command: python {' '.join(sys.argv)}")
    calls = "one call" if args.slice <= 0 else f"calls of {args.slice} texts"
    print(f"# {len(texts)} texts, {n_tokens} tokens, {calls}; forwards of up to "
          f"{args.max_batch_tokens} positions, {positions} positions in all, "
          f"{padded * 100:.1f}% of them padding; host stages {zero.host:.3f} s "
          f"({n_tokens / zero.host / 1e6:.2f}M tokens/s) and device stage {zero.device:.3f} s "
          f"with a zero-time forward (its CPU work: stand-in, head, gather, post-processing); "
          f"best of {args.rounds} rounds")  # fmt: skip
    print(
        "# host s, device s: time in the host stages (prepare, collect) and in the device "
        "stage (launch) of the serial run; the pipelined row is compared with them"
    )
    head = ("device/host", "engine", "host s", "device s", "wall s", "wall / max(host, device)",
            "wall / (host + device)", "counts = serial")  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    ok = True
    for ratio, rows in results:
        base = rows["serial"]
        host, device = base.host, base.device
        for name, run in rows.items():
            same = sum(a == b for a, b in zip(base.counts, run.counts, strict=True))
            ok &= same == len(texts)
            print(f"| {ratio:g} | {name} | {host:.3f} | {device:.3f} | {run.wall:.3f} | "
                  f"{run.wall / max(host, device):.2f} | {run.wall / (host + device):.2f} | "
                  f"{same}/{len(texts)} |")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
