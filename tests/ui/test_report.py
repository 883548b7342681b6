"""``sigreward report``: PNG plots and summary.md of a run driven through the live API."""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sigreward.report import PLOTS, add_report_parser, run_report
from tests.support.server import REPO_ROOT, ServerProcess, start_server
from tests.ui.driving import drive_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sigreward")
    add_report_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert data[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 400 and height >= 200, (path, width, height)
    assert len(data) > 8_000, (path, len(data))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    # Plotted lines: many distinct colours, not a blank canvas.
    assert len({tuple(p) for p in pixels.reshape(-1, pixels.shape[-1])[::7]}) > 20, path


def check_report(out: Path, run: dict[str, Any]) -> None:
    for name, *_ in PLOTS:
        check_png(out / name)
    summary = (out / "summary.md").read_text()
    history = run["schedule"]["history"]
    assert f"- steps: {len(history)}\n" in summary
    assert f"- last finished step: {history[-1]['step']}\n" in summary
    assert f"- last k: {run['schedule']['k']:.4f}\n" in summary
    assert f"- score (first → last): {history[0]['score']:.4f} → {history[-1]['score']:.4f}" in (
        summary
    )
    rows = [line for line in summary.splitlines() if line.startswith("| ") and "|" in line[2:]]
    step_rows = [r for r in rows if r.split("|")[1].strip().isdigit()]
    assert [int(r.split("|")[1]) for r in step_rows] == [h["step"] for h in history[-10:]]
    assert "| lambda_c | 5.0000 |" in summary


@pytest.fixture(scope="module")
def driven(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, dict[str, Any]]]:
    """One server with a 60-step values run, shared by the module's tests (they only read)."""
    server = start_server(data_dir=tmp_path_factory.mktemp("report-server"))
    try:
        yield server, drive_run(server, "report-run", 60, seed=5)
    finally:
        server.stop()


def test_report_over_http(driven: tuple[ServerProcess, dict[str, Any]], tmp_path: Path) -> None:
    server, run = driven
    assert len(run["schedule"]["history"]) == 60
    out = tmp_path / "report"
    assert (
        run_report(parse(["report", "report-run", "--out", str(out), "--url", server.base_url]))
        == 0
    )
    check_report(out, run)


def test_report_from_the_store(
    driven: tuple[ServerProcess, dict[str, Any]], tmp_path: Path
) -> None:
    server, run = driven
    out = tmp_path / "report"
    args = parse(["report", "report-run", "--out", str(out), "--data-dir", str(server.data_dir)])
    assert run_report(args) == 0
    check_report(out, run)


def test_report_errors_are_clear(
    driven: tuple[ServerProcess, dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, _ = driven
    out = tmp_path / "report"
    assert run_report(parse(["report", "nope", "--out", str(out), "--url", server.base_url])) == 1
    assert "404" in capsys.readouterr().err
    empty = tmp_path / "empty"
    assert (
        run_report(parse(["report", "report-run", "--out", str(out), "--data-dir", str(empty)]))
        == 1
    )
    assert "no store file" in capsys.readouterr().err
    assert not empty.exists(), "reading must not create a store"
    assert not out.exists()


def test_report_with_api_key(
    server_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = server_factory(args=["--api-key", "report-key"])
    run = drive_run(server, "keyed", 5, api_key="report-key")
    out = tmp_path / "report"
    argv = ["report", "keyed", "--out", str(out), "--url", server.base_url]
    assert run_report(parse(argv)) == 1
    err = capsys.readouterr().err
    assert "401" in err and "--api-key" in err
    assert run_report(parse([*argv, "--api-key", "report-key"])) == 0
    assert "- steps: 5\n" in (out / "summary.md").read_text()
    assert len(run["schedule"]["history"]) == 5


def test_sigreward_cli_report(driven: tuple[ServerProcess, dict[str, Any]], tmp_path: Path) -> None:
    server, run = driven
    out = tmp_path / "cli-report"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sigreward",
            "report",
            "report-run",
            "--out",
            str(out),
            "--url",
            server.base_url,
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert str(out / "summary.md") in result.stdout
    check_report(out, run)


def test_report_of_a_baseline_run_has_gaps_not_errors(
    driven: tuple[ServerProcess, dict[str, Any]], tmp_path: Path
) -> None:
    """A baseline run has no significance means: its plots and summary show gaps ("–")."""
    server, _ = driven
    status, _ = server.request("PUT", "/v1/runs/dapo-run", {"reward": "dapo"})
    assert status == 201
    for step in range(3):
        samples = [
            {"id": f"{step}-{i}", "num_tokens": 100 + 50 * i, "correct": i % 2 == 0}
            for i in range(4)
        ]
        body = {"run_id": "dapo-run", "step": step, "samples": samples}
        assert server.request("POST", "/v1/rewards", body)[0] == 200
    status, run = server.request("POST", "/v1/runs/dapo-run/steps/2/finish")
    assert status == 200, run
    out = tmp_path / "dapo"
    assert (
        run_report(parse(["report", "dapo-run", "--out", str(out), "--url", server.base_url])) == 0
    )
    summary = (out / "summary.md").read_text()
    assert "- steps: 3\n" in summary
    assert "- mean significant units (first → last): –" in summary
    assert "| reward | dapo |" in summary
    check_png(out / "score.png")
    assert (out / "significance.png").stat().st_size > 0
