"""Smoke test of bench/bench_http.py: both real servers, a tiny model, a handful of texts.

The tolerance for count agreement is the one docs/perf.md states for the HTTP benchmark: at
least 95% of texts get exactly the reference's counts and at most 0.5% of the reference's
words move (the reference re-tokenizes detokenized chunks, so exact equality is not promised).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.bench_http import Agreement, agreement
from bench.reference_server import BadRequest, parse_count_body
from tests.support.models import cached_model

ROOT = Path(__file__).resolve().parents[2]
MIN_SAME_TEXTS = 0.95
MAX_MOVED_WORDS = 0.005
TEXTS, BATCH, CONCURRENCY = 12, 4, 2


def _run_cli(*args: str, timeout: float = 240.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_http.py"), *args],
        cwd=str(ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _table_rows(stdout: str) -> list[list[str]]:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("|")]
    assert len(lines) >= 2 and lines[1].startswith("|---"), stdout
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[:1] + lines[2:]]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_model("tiny_bert", tmp_path_factory.getbasetemp() / "models")


def test_bench_http_prints_table_and_counts_agree(tiny_model: Path) -> None:
    proc = _run_cli(
        "--model", str(tiny_model), "--texts", str(TEXTS), "--batch", str(BATCH),
        "--concurrency", str(CONCURRENCY), "--median-words", "80", "--timeout", "200",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "# command: python bench/bench_http.py --model" in proc.stdout
    head, *rows = _table_rows(proc.stdout)
    col = {name: i for i, name in enumerate(head)}
    assert {"responses/s", "requests/s", "request p99 ms", "batch p99 ms"} <= set(col)
    assert len(rows) == 2 and all(len(r) == len(head) for r in rows), proc.stdout
    ref, ours = rows
    assert ref[col["server"]].startswith("published llmlingua")
    assert ours[col["server"]].startswith("sigreward")
    # The reference trainer sends one request per response; ours one per batch.
    assert int(ref[col["requests"]]) == TEXTS
    assert int(ours[col["requests"]]) == -(-TEXTS // BATCH)
    assert int(ref[col["responses"]]) == int(ours[col["responses"]]) == TEXTS
    for row in rows:
        assert float(row[col["responses/s"]]) > 0
        assert float(row[col["request p50 ms"]]) <= float(row[col["request p99 ms"]])
        assert float(row[col["batch p50 ms"]]) <= float(row[col["batch p99 ms"]])
    same = re.match(r"(\d+)/(\d+) texts same .* = ([\d.]+)%\)", ours[col["counts = reference"]])
    assert same, ours[col["counts = reference"]]
    n_same, n_texts, moved_pct = int(same[1]), int(same[2]), float(same[3])
    assert n_texts == TEXTS
    assert n_same >= MIN_SAME_TEXTS * TEXTS
    assert moved_pct <= MAX_MOVED_WORDS * 100


def test_bench_http_timeout_is_a_clear_error(tiny_model: Path) -> None:
    proc = _run_cli("--model", str(tiny_model), "--texts", "4", "--timeout", "0.001", timeout=120)
    assert proc.returncode == 1
    assert "--timeout" in proc.stderr
    assert "|" not in proc.stdout


def test_agreement_counts_differences() -> None:
    agree = agreement([(3, 2), (5, 5), (1, 0)], [(3, 2), (4, 6), (1, 1)])
    assert agree == Agreement(
        texts=3, same=1, delta_significant=1, delta_insignificant=2, reference_words=16
    )
    assert agree.differ == 2
    assert agree.moved_fraction == pytest.approx(3 / 16)
    assert agree.describe().startswith("1/3 texts same (2 differ;")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"{", "body"),
        (b"[]", "body"),
        (b'{"threshold": 0.5}', "text"),
        (b'{"text": "a", "threshold": 1.5}', "threshold"),
        (b'{"text": "a", "threshold": true}', "threshold"),
    ],
)
def test_reference_server_rejects_bad_bodies(raw: bytes, field: str) -> None:
    with pytest.raises(BadRequest, match=f"^{field}:"):
        parse_count_body(raw, 0.5)


def test_reference_server_accepts_default_threshold() -> None:
    assert parse_count_body(b'{"text": "x"}', 0.4) == ("x", 0.4)
