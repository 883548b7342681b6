"""Our service vs the paper's reward service (the published LLMLingua-2 code), through HTTP, with
concurrent clients.

The same mixed-length texts as ``bench/bench_engine.py`` (its ``make_texts``) are cut into
trainer batches of ``--batch`` responses. ``--concurrency`` clients (asyncio + httpx), each a
trainer worker, take batches from one queue until none is left:

- ours (``python -m sigreward serve --model DIR``): one ``POST /v1/rewards`` per batch
  (classifier mode, "given" reference counts, the full reward path including its SQLite
  transaction); step = batch index // concurrency, as data-parallel workers of one step would;
- reference (``bench/reference_server.py``, the same checkpoint in fp32): the worker loops over
  its batch and sends one ``POST /count`` per response, waiting for each answer before the next
  (the published pipeline, bench/published_pipeline.py: "the trainer loops over its batch"). A batch's latency is therefore the
  sum of its requests' latencies.

Both servers are started and warmed up (one request each); then each round drives the
reference, then ours, so only one server is under load at a time. With ``--rounds R`` the
servers alternate R times and the table shows each one's best round (on a shared machine the
least disturbed one); the header lists every round. Prints one table: requests, responses, seconds, responses/s,
requests/s, p50/p99 request latency, p50/p99 batch latency, the responses/s ratio against the
reference, and how many texts got exactly the reference's counts.

    python bench/bench_http.py                                   # CPU, MiniLM classifier
    python bench/bench_http.py --texts 512 --batch 16 --concurrency 8
    python bench/bench_http.py --model DIR --device cuda --texts 4096
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_engine import make_texts  # noqa: E402
from tests.support.server import (  # noqa: E402
    ServerProcess,
    ServerStartError,
    free_port,
    spawn,
    start_server,
)

RUN_ID = "bench-http"
REFERENCE_COUNTS = {"significant": 40, "insignificant": 25}  # "given" reference of each sample


class BenchError(RuntimeError):
    """The benchmark could not finish (a server failed, a request failed, or time ran out)."""


@dataclass
class BatchResult:
    index: int
    latency: float  # seconds from sending the batch's first request to its last answer
    request_latencies: list[float]
    counts: list[tuple[int, int]]  # (significant, insignificant) per response, batch order


@dataclass
class Row:
    name: str
    seconds: float
    batches: list[BatchResult]
    counts: list[tuple[int, int]] = field(default_factory=list)  # per text, text order

    @property
    def requests(self) -> int:
        return sum(len(b.request_latencies) for b in self.batches)

    @property
    def responses(self) -> int:
        return sum(len(b.counts) for b in self.batches)

    def request_pct(self, q: float) -> float:
        return float(np.percentile([x for b in self.batches for x in b.request_latencies], q))

    def batch_pct(self, q: float) -> float:
        return float(np.percentile([b.latency for b in self.batches], q))


@dataclass
class Agreement:
    texts: int
    same: int  # texts whose (significant, insignificant) equal the reference's exactly
    delta_significant: int  # sum over texts of |S_ours - S_ref|
    delta_insignificant: int
    reference_words: int  # sum over texts of S_ref + I_ref

    @property
    def differ(self) -> int:
        return self.texts - self.same

    @property
    def moved_fraction(self) -> float:
        """Words that changed side or appeared/disappeared, over the reference's words."""
        return (self.delta_significant + self.delta_insignificant) / max(self.reference_words, 1)

    def describe(self) -> str:
        return (
            f"{self.same}/{self.texts} texts same ({self.differ} differ; significant "
            f"{self.delta_significant} + insignificant {self.delta_insignificant} words moved "
            f"of {self.reference_words} = {self.moved_fraction * 100:.2f}%)"
        )


@dataclass
class Report:
    rows: list[Row]  # [reference, ours]
    agreement: Agreement
    header: list[str]
    table: list[str]

    def text(self) -> str:
        return "\n".join(self.header + self.table)


def agreement(reference: Sequence[tuple[int, int]], ours: Sequence[tuple[int, int]]) -> Agreement:
    pairs = list(zip(reference, ours, strict=True))
    return Agreement(
        texts=len(pairs),
        same=sum(a == b for a, b in pairs),
        delta_significant=sum(abs(a[0] - b[0]) for a, b in pairs),
        delta_insignificant=sum(abs(a[1] - b[1]) for a, b in pairs),
        reference_words=sum(a[0] + a[1] for a, _ in pairs),
    )


# ---------------------------------------------------------------- servers


def start_ours(model_dir: str, device: str, data_dir: Path, timeout: float) -> ServerProcess:
    return start_server(
        ["--model", model_dir, "--device", device, "--log-level", "warning"],
        data_dir=data_dir,
        timeout=timeout,
    )


def start_reference(model_dir: str, device: str, log_dir: Path, timeout: float) -> ServerProcess:
    """``bench/reference_server.py`` as a subprocess; retries a port lost to a race."""
    last: ServerStartError | None = None
    for attempt in range(3):
        port = free_port()
        argv = [
            sys.executable,
            str(ROOT / "bench" / "reference_server.py"),
            "--model",
            model_dir,
            "--device",
            device,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        server = spawn(argv, port, log_dir, log_dir / f"reference-{port}-{attempt}.log")
        try:
            server.wait_for("/readyz", 200, timeout)
            return server
        except ServerStartError as err:
            server.stop(timeout=5)
            last = err
            if "address already in use" not in server.log().lower():
                raise
    assert last is not None
    raise last


# ---------------------------------------------------------------- clients

SendBatch = Callable[[Any, int, list[str]], Awaitable[BatchResult]]


async def drive(
    base_url: str,
    batches: list[list[str]],
    concurrency: int,
    send: SendBatch,
    request_timeout: float,
) -> tuple[float, list[BatchResult]]:
    """``concurrency`` workers take batches from one queue; returns (wall seconds, results)."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=request_timeout, limits=limits, trust_env=False
    ) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(len(batches)):
            queue.put_nowait(i)
        results: list[BatchResult] = []

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                results.append(await send(client, i, batches[i]))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - t0
    results.sort(key=lambda b: b.index)
    return seconds, results


def _check(resp: Any, what: str) -> Any:
    if resp.status_code != 200:
        raise BenchError(f"{what}: HTTP {resp.status_code}: {resp.text[:300]}")
    return resp.json()


def ours_sender(concurrency: int, threshold: float, run_id: str = RUN_ID) -> SendBatch:
    async def send(client: Any, index: int, texts: list[str]) -> BatchResult:
        body = {
            "run_id": run_id,
            "step": index // concurrency,
            "samples": [
                {
                    "id": f"b{index}-r{j}",
                    "prompt_id": f"b{index}-p{j // 4}",
                    "response": text,
                    "correct": j % 2 == 0,
                    "reference": REFERENCE_COUNTS,
                }
                for j, text in enumerate(texts)
            ],
        }
        t0 = time.perf_counter()
        resp = await client.post("/v1/rewards", json=body)
        latency = time.perf_counter() - t0
        data = _check(resp, f"POST /v1/rewards (batch {index})")
        samples = data["samples"]
        if len(samples) != len(texts):
            raise BenchError(f"batch {index}: {len(samples)} samples answered for {len(texts)}")
        counts = [(int(s["significant"]), int(s["insignificant"])) for s in samples]
        return BatchResult(index, latency, [latency], counts)

    return send


def reference_sender(threshold: float) -> SendBatch:
    async def send(client: Any, index: int, texts: list[str]) -> BatchResult:
        latencies: list[float] = []
        counts: list[tuple[int, int]] = []
        for j, text in enumerate(texts):
            t0 = time.perf_counter()
            resp = await client.post("/count", json={"text": text, "threshold": threshold})
            latencies.append(time.perf_counter() - t0)
            data = _check(resp, f"POST /count (batch {index}, response {j})")
            counts.append((int(data["significant"]), int(data["insignificant"])))
        return BatchResult(index, sum(latencies), latencies, counts)

    return send


async def _warm_ours(base_url: str, threshold: float, texts: list[str], run_ids: list[str],
                     timeout: float) -> None:  # fmt: skip
    """Create the runs (one per round, so no round sees another's samples) and score once."""
    import httpx

    warmup_run = RUN_ID + "-warmup"
    config = {"significance": "classifier", "reference": "given", "significance_threshold": threshold}  # fmt: skip
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, trust_env=False) as client:
        for run_id in (warmup_run, *run_ids):
            resp = await client.put(f"/v1/runs/{run_id}", json=config)
            if resp.status_code not in (200, 201):
                raise BenchError(f"PUT /v1/runs/{run_id}: HTTP {resp.status_code}: {resp.text[:300]}")  # fmt: skip
        await ours_sender(1, threshold, warmup_run)(client, 0, texts)


async def _warm_reference(base_url: str, threshold: float, texts: list[str], timeout: float) -> None:  # fmt: skip
    import httpx

    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, trust_env=False) as client:
        await reference_sender(threshold)(client, 0, texts[:1])


# ---------------------------------------------------------------- benchmark


def _remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise BenchError(f"--timeout reached before {what}")
    return left


def _measure(
    name: str,
    base_url: str,
    batches: list[list[str]],
    args: argparse.Namespace,
    send: SendBatch,
    deadline: float,
) -> Row:
    left = _remaining(deadline, f"the {name} phase")

    async def phase() -> tuple[float, list[BatchResult]]:
        return await asyncio.wait_for(
            drive(base_url, batches, args.concurrency, send, request_timeout=left), timeout=left
        )

    try:
        seconds, results = asyncio.run(phase())
    except (asyncio.TimeoutError, TimeoutError) as exc:
        raise BenchError(f"--timeout ({args.timeout:.0f} s) reached during the {name} phase") from exc  # fmt: skip
    counts = [c for b in results for c in b.counts]
    return Row(name, seconds, results, counts)


def load_model_dir(args: argparse.Namespace) -> str:
    if args.model is not None:
        return str(args.model)
    from tests.support.models import cached_model

    return str(cached_model(args.model_kind, args.model_cache))


def count_tokens(model_dir: str, texts: list[str]) -> int:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.model_max_length = 1 << 30  # only counting: no "longer than 512" warning
    return sum(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"])


def run(argv: Sequence[str] | None = None) -> Report:
    args = parse_args(argv)
    deadline = time.monotonic() + args.timeout
    model_dir = load_model_dir(args)
    texts = make_texts(args.texts, args.seed, args.median_words)
    batches = [texts[i : i + args.batch] for i in range(0, len(texts), args.batch)]
    warm = texts[: min(2, len(texts))]
    run_ids = [f"{RUN_ID}-{r}" for r in range(args.rounds)]
    rounds: list[tuple[Row, Row]] = []

    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp, contextlib.ExitStack() as stack:
        tmp_path = Path(tmp)
        ref = start_reference(model_dir, args.device, tmp_path, _remaining(deadline, "start"))
        stack.callback(ref.stop)
        ours = start_ours(model_dir, args.device, tmp_path / "data", _remaining(deadline, "start"))
        stack.callback(ours.stop)
        asyncio.run(_warm_reference(ref.base_url, args.threshold, warm, _remaining(deadline, "warm-up")))  # fmt: skip
        asyncio.run(_warm_ours(ours.base_url, args.threshold, warm, run_ids, _remaining(deadline, "warm-up")))  # fmt: skip
        # Rounds alternate the servers so that load from elsewhere on a shared machine hits both.
        for r in range(args.rounds):
            ref_row = _measure("published llmlingua 0.2.2 (fp32, 1 request/response)", ref.base_url,
                               batches, args, reference_sender(args.threshold), deadline)  # fmt: skip
            ours_row = _measure(f"sigreward (POST /v1/rewards, {args.batch}/request)",
                                ours.base_url, batches, args,
                                ours_sender(args.concurrency, args.threshold, run_ids[r]), deadline)  # fmt: skip
            rounds.append((ref_row, ours_row))

    for ref_row, ours_row in rounds[1:]:
        for first, again in ((rounds[0][0], ref_row), (rounds[0][1], ours_row)):
            if again.counts != first.counts:
                raise BenchError(f"{first.name}: counts changed between rounds")
    rows = [_best([r[0] for r in rounds]), _best([r[1] for r in rounds])]
    agree = agreement(rows[0].counts, rows[1].counts)
    n_words = sum(len(t.split()) for t in texts)
    n_tokens = count_tokens(model_dir, texts)
    header = _header(args, model_dir, len(texts), len(batches), n_words, n_tokens, rounds)
    return Report(rows, agree, header, _table(rows, agree))


def _best(rows: list[Row]) -> Row:
    """The round with the highest throughput: the one least disturbed by other load."""
    return max(rows, key=lambda r: r.responses / r.seconds)


def _header(args: argparse.Namespace, model_dir: str, n_texts: int, n_batches: int,
            n_words: int, n_tokens: int, rounds: list[tuple[Row, Row]]) -> list[str]:  # fmt: skip
    import torch

    per_round = "; ".join(
        f"round {i + 1}: reference {a.responses / a.seconds:.2f}, ours {b.responses / b.seconds:.2f}"
        for i, (a, b) in enumerate(rounds)
    )
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return [
        f"# {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}  {platform.node()}",
        f"# cpu: {_cpu_name()}, {os.cpu_count()} cores (load average now {load}); "
        f"torch {torch.__version__}; device {args.device}; model {model_dir}",
        f"# {n_texts} texts ({n_words} words, {n_tokens} classifier tokens) in {n_batches} "
        f"batches of {args.batch}; {args.concurrency} concurrent clients; threshold {args.threshold}",  # fmt: skip
        f"# responses/s per round ({per_round}); the table shows each server's best round",
        f"# command: python {' '.join(['bench/bench_http.py', *args.argv])}",
    ]


def _table(rows: list[Row], agree: Agreement) -> list[str]:
    head = ("server", "requests", "responses", "seconds", "responses/s", "requests/s",
            "request p50 ms", "request p99 ms", "batch p50 ms", "batch p99 ms", "ratio",
            "counts = reference")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    base = rows[0]
    for r in rows:
        ratio = (r.responses / r.seconds) / (base.responses / base.seconds)
        same = "-" if r is base else agree.describe()
        lines.append(
            f"| {r.name} | {r.requests} | {r.responses} | {r.seconds:.2f} | "
            f"{r.responses / r.seconds:.2f} | {r.requests / r.seconds:.2f} | "
            f"{r.request_pct(50) * 1e3:.0f} | {r.request_pct(99) * 1e3:.0f} | "
            f"{r.batch_pct(50) * 1e3:.0f} | {r.batch_pct(99) * 1e3:.0f} | {ratio:.2f}x | {same} |"
        )
    return lines


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--texts", type=int, default=128, help="number of response texts")
    p.add_argument("--batch", type=int, default=16, help="responses per trainer batch")
    p.add_argument("--concurrency", type=int, default=8, help="concurrent trainer clients")
    p.add_argument("--rounds", type=int, default=1,
                   help="measure each server this many times, alternating; report the best")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--median-words", type=float, default=300.0)
    p.add_argument("--model", type=str, default=None,
                   help="checkpoint dir (default: the --model-kind classifier built locally)")  # fmt: skip
    p.add_argument("--model-kind", default="minilm", help="tests/support/models.py builder")
    p.add_argument("--model-cache", type=str, default="/tmp/sigreward-bench-models")
    p.add_argument("--device", type=str, default="cpu", help="both servers' device")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--timeout", type=float, default=900.0,
                   help="seconds for the whole benchmark (start-up included)")  # fmt: skip
    raw = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(raw)
    for name in ("texts", "batch", "concurrency", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if not 0.0 < args.threshold < 1.0:
        p.error("--threshold must be in (0, 1)")
    args.argv = raw
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        report = run(argv)
    except (BenchError, ServerStartError) as exc:
        print(f"bench_http: error: {exc}", file=sys.stderr)
        return 1
    print(report.text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
