"""Overload: a client that gives up loses its queue slot, Retry-After follows the
measured throughput, and the queue's token estimate holds for CJK text."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from sigreward.batching import Batcher, QueueFull, estimate_text_tokens
from sigreward.engine import SignificanceEngine
from tests.api.conftest import big_texts, run_id
from tests.support.server import ServerFactory, ServerProcess
from tests.support.waiting import wait_until

REF = {"significant": 2, "insignificant": 2}
CJK = "我们先把十七和二十五相加，然后检查答案是否正确。" * 40


@pytest.fixture(scope="module")
def tiny_engine(tiny_model: Path) -> SignificanceEngine:
    engine = SignificanceEngine(str(tiny_model), device="cpu")
    engine.warmup()
    return engine


def test_the_queue_estimate_holds_for_cjk(tiny_engine: SignificanceEngine) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_engine.model_name)
    english = "Let me think about this problem step by step. First, we add 17 and 25. " * 40
    for text in (english, CJK, "🙂 " * 300):
        actual = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        # Never far below the real count, whatever the script (chars / 3 was 3x low on CJK).
        assert estimate_text_tokens(text) >= 0.8 * actual, (text[:20], actual)


def _metric(server: ServerProcess, name: str) -> float:
    text = server.request("GET", "/metrics")[1]
    for line in str(text).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_retry_after_follows_the_measured_throughput(tiny_engine: SignificanceEngine) -> None:
    async def scenario() -> tuple[QueueFull, float, int]:
        batcher = Batcher(tiny_engine, max_batch_tokens=4096, max_queue_tokens=10**9)
        batcher.start()
        try:
            await batcher.count_texts(big_texts(n=4), 0.5)  # measured: the throughput is known
            rate = batcher.tokens_per_s
            # Enough queued work for two minutes at that rate: all enqueued before the worker
            # runs again (the tasks start in this loop iteration), then one more is refused.
            per_job = estimate_text_tokens(big_texts(n=1)[0]) * 20
            jobs = math.ceil(rate * 120 / per_job) + 1
            batcher.max_queue_tokens = jobs * per_job
            tasks = [
                asyncio.ensure_future(batcher.count_texts(big_texts(n=20), 0.5))
                for _ in range(jobs)
            ]
            await asyncio.sleep(0)
            queued = batcher.queued_tokens
            try:
                await batcher.count_texts(big_texts(n=20), 0.5)
            except QueueFull as exc:
                refused = exc
            else:
                raise AssertionError("the queue took more than it holds")
            for task in tasks:
                task.cancel()
            return refused, rate, queued
        finally:
            await batcher.stop()

    refused, rate, queued = asyncio.run(scenario())
    assert refused.retry_after_s == math.ceil(queued / rate)
    assert refused.retry_after_s > 60  # no longer pinned at 60 s


def test_a_client_that_gives_up_loses_its_queue_slot(
    server_factory: ServerFactory, tiny_model: Path
) -> None:
    server = server_factory(args=["--model", str(tiny_model), "--device", "cpu"])
    body = {
        "run_id": run_id("long"),
        "step": 0,
        "samples": [{"response": t, "correct": True, "reference": REF} for t in big_texts(n=60)],
    }
    result: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: result.setdefault(
            "a", server.request("POST", "/v1/rewards", body, timeout=120)
        )
    )
    worker.start()
    wait_until(
        lambda: _metric(server, "sigreward_queue_requests"),
        lambda queued: queued >= 1 or not worker.is_alive(),
        interval=0.01,
        what="the long request in the queue",
    )
    gone_runs = [run_id("gone") for _ in range(3)]
    sockets = []
    for rid in gone_runs:
        raw = json.dumps(
            {
                "run_id": rid,
                "step": 0,
                "samples": [{"response": "short text", "correct": True, "reference": REF}],
            }
        ).encode()
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(
            b"POST /v1/rewards HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(raw)}\r\n\r\n".encode()
            + raw
        )
        sockets.append(sock)
    wait_until(
        lambda: _metric(server, "sigreward_queue_requests"),
        lambda queued: queued >= 4 or not worker.is_alive(),
        interval=0.01,
        what="four requests in the queue",
    )
    assert worker.is_alive(), "the long request finished before the others queued; make it bigger"
    for sock in sockets:
        sock.close()  # the clients give up while their requests wait
    worker.join(timeout=120)
    assert result["a"][0] == 200, result
    abandoned = wait_until(
        lambda: _metric(server, "sigreward_queue_abandoned_total"),
        lambda count: count >= 3,
        what="three abandoned requests counted",
    )
    assert abandoned == 3
    for rid in gone_runs:
        # Dropped before scoring: nothing was recorded, so a retry counts the samples once.
        assert server.request("GET", f"/v1/runs/{rid}")[0] == 404
    wait_until(
        lambda: _metric(server, "sigreward_queue_requests"),
        lambda queued: queued == 0,
        what="an empty queue",
    )
