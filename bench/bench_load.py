"""Memory and probe latency under many concurrent large request bodies.

Starts ``sigreward serve`` (values mode, no model) with ``--max-inflight-body-bytes``, then
``--clients`` threads each POST one body of about ``--body-mb`` MB to /v1/rewards at the same
moment: ``--samples`` samples of unit values each, more than the server's ``max_samples`` by
default, so every body is parsed and then refused with 413 (the hostile case: all the memory,
none of the work). Meanwhile one thread polls GET /livez and another samples the server's RSS
from /proc. Prints one table: idle and peak RSS, peak minus idle, the in-flight budget, the
answers by status, and /livez latency p50 / p99 / max.

    python bench/bench_load.py                       # 48 clients x 8 MB, 64 MiB budget
    python bench/bench_load.py --clients 96 --budget-mb 32
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.server import ServerProcess, start_server  # noqa: E402

MB = 1024 * 1024


def make_body(target_bytes: int, samples: int, value: float = 0.125) -> bytes:
    """A /v1/rewards body of about ``target_bytes``: ``samples`` values-mode samples whose
    unit values are all ``value`` (``0`` is the worst case: two bytes of JSON per value, each
    a float object of the parsed request)."""
    per_sample = max(1, target_bytes // samples)
    width = len(json.dumps(value)) + 1  # the number and a comma
    values = max(1, per_sample // width)
    sample = {
        "significance": [value] * values,
        "correct": True,
        "reference": {"significant": 10, "insignificant": 10},
    }
    body = {"run_id": "bench-load", "step": 0, "samples": [sample] * samples}
    return json.dumps(body, separators=(",", ":")).encode()


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class LoadResult:
    idle_rss: int
    peak_rss: int
    statuses: Counter[int]
    livez_ms: list[float] = field(default_factory=list)

    def livez_quantile(self, q: float) -> float:
        ordered = sorted(self.livez_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _post(port: int, body: bytes, statuses: list[int], start: threading.Barrier) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        start.wait()
        connection.request(
            "POST", "/v1/rewards", body=body, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
    except OSError:
        statuses.append(0)  # connection closed (e.g. 413 before the body was read)
    finally:
        connection.close()


def run_load(server: ServerProcess, clients: int, body: bytes) -> LoadResult:
    """Send ``clients`` copies of ``body`` at once; RSS and /livez latency meanwhile."""
    idle = rss_bytes(server.pid)
    peak = idle
    statuses: list[int] = []
    livez: list[float] = []
    done = threading.Event()

    def sample_rss() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_bytes(server.pid))
            time.sleep(0.01)

    def poll_livez() -> None:
        while not done.is_set():
            started = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
            try:
                connection.request("GET", "/livez")
                connection.getresponse().read()
                livez.append((time.perf_counter() - started) * 1000)
            except OSError:
                livez.append(float("inf"))
            finally:
                connection.close()
            time.sleep(0.02)

    start = threading.Barrier(clients)
    posters = [
        threading.Thread(target=_post, args=(server.port, body, statuses, start))
        for _ in range(clients)
    ]
    watchers = [threading.Thread(target=sample_rss), threading.Thread(target=poll_livez)]
    for thread in watchers + posters:
        thread.start()
    for thread in posters:
        thread.join()
    done.set()
    for thread in watchers:
        thread.join()
    return LoadResult(idle, peak, Counter(statuses), livez)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=48)
    parser.add_argument("--body-mb", type=float, default=8.0)
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--budget-mb", type=float, default=64.0, help="max in-flight body MiB")
    parser.add_argument("--value", type=float, default=0.125, help="every unit value (0: worst)")
    args = parser.parse_args(argv)
    value = int(args.value) if args.value.is_integer() else args.value
    body = make_body(int(args.body_mb * 1_000_000), args.samples, value)
    budget = int(args.budget_mb * MB)
    print(
        f"# machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    print(f"# date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    print(f"# command: python bench/bench_load.py {' '.join(argv or sys.argv[1:])}")
    with tempfile.TemporaryDirectory(prefix="bench-load-") as data:
        server = start_server(
            ["--max-inflight-body-bytes", str(budget), "--max-body-bytes", str(len(body) + 1)],
            data_dir=data,
        )
        try:
            result = run_load(server, args.clients, body)
        finally:
            server.stop()
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(result.statuses.items()))
    rows = [
        ("clients x body", f"{args.clients} x {len(body) / MB:.2f} MiB"),
        ("in-flight budget", f"{budget / MB:.0f} MiB"),
        ("idle RSS", f"{result.idle_rss / MB:.0f} MiB"),
        ("peak RSS", f"{result.peak_rss / MB:.0f} MiB"),
        ("peak - idle", f"{(result.peak_rss - result.idle_rss) / MB:.0f} MiB"),
        ("answers", statuses),
        ("/livez probes", str(len(result.livez_ms))),
        ("/livez p50", f"{result.livez_quantile(0.5):.1f} ms"),
        ("/livez p99", f"{result.livez_quantile(0.99):.1f} ms"),
        ("/livez max", f"{max(result.livez_ms, default=float('nan')):.1f} ms"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"| {'measure'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
