"""`python -m bench.study --quick` end to end: SFT, classifier, a real `sigreward serve`, every
variant's rewards over HTTP through the SDK, and the report with its sections and plots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.study.report import SECTIONS
from bench.study.variants import BY_NAME, run_config_for

ROOT = Path(__file__).resolve().parents[2]
CORE = ("outcome", "kimi", "length", "sig_classifier", "sig_oracle", "sig_random")


def test_quick_study_writes_the_report(tmp_path: Path) -> None:
    work, report = tmp_path / "work", tmp_path / "page" / "study.md"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "clients" / "python")]),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.study",
            "--quick",
            "--work-dir",
            str(work),
            "--report",
            str(report),
        ],
        cwd=str(ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    page = report.read_text()
    positions = [page.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    assert "Pilot, not the full study" in page
    assert "`python -m bench.study --quick" in page
    for png in ("acc_length.png", "quick_share.png", "k.png"):
        data = (report.parent / "study" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](study/{png})" in page

    meta = json.loads((work / "meta.json").read_text())
    assert 0.0 <= meta["classifier"]["served_accuracy"] <= 1.0
    ran = {p.stem: json.loads(p.read_text()) for p in (work / "runs").glob("*.json")}
    skipped = set(meta["skipped"])
    # Every variant either ran or was refused by the server (a reward it does not offer).
    assert {f"{v}-s0" for v in BY_NAME if v not in skipped} == set(ran)
    assert set(CORE) <= {r["variant"] for r in ran.values()}
    for result in ran.values():
        variant = BY_NAME[result["variant"]]
        # The run's configuration as the server stored it: the rewards came from that run.
        for key, value in run_config_for(variant, 3).items():
            if key == "reward_params":
                assert value.items() <= result["config"]["reward_params"].items()
            else:
                assert result["config"][key] == value
        assert [s["step"] for s in result["steps"]] == [0, 1, 2]
        assert all(isinstance(s["k"], float) for s in result["steps"])
        assert [e["step"] for e in result["evals"]] == [0, 2, 3]
        assert f"| {result['variant']} | 1 |" in page
