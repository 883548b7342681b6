"""Memory under many concurrent large bodies, against a real server process: the
bodies in flight are bounded by --max-inflight-body-bytes (beyond it requests wait, then 429),
so RSS stays within the budget docs/operations.md states, and /livez keeps answering because
bodies are parsed off the event loop. Uses bench/bench_load.py's load driver."""

from __future__ import annotations

from bench.bench_load import make_body, run_load
from tests.support.server import ServerFactory

MIB = 1024 * 1024
BUDGET = 8 * MIB
# docs/operations.md: at most 20 bytes of memory per byte of body in flight (a list of
# one-digit numbers, the worst case).
BYTES_PER_BODY_BYTE = 20
# Far above a probe's usual answer on a shared, loaded machine, far below the tens of seconds
# a blocked event loop took before.
PROBE_LIMIT_MS = 10_000


def test_concurrent_large_bodies_stay_within_the_memory_budget(
    server_factory: ServerFactory,
) -> None:
    body = make_body(3_000_000, samples=2048, value=0)  # 2048 > 1024 samples: 413 once parsed
    server = server_factory(args=["--max-inflight-body-bytes", str(BUDGET), "--body-wait", "60"])
    result = run_load(server, clients=24, body=body)
    assert set(result.statuses) <= {413, 429}, result.statuses
    assert result.statuses[413] >= 1, result.statuses
    grown = result.peak_rss - result.idle_rss
    assert grown <= BYTES_PER_BODY_BYTE * BUDGET, (
        f"RSS grew by {grown / MIB:.0f} MiB for a budget of {BUDGET / MIB:.0f} MiB"
    )
    assert result.livez_ms and max(result.livez_ms) < PROBE_LIMIT_MS, sorted(result.livez_ms)[-5:]
    assert server.request("GET", "/livez")[0] == 200
