"""``sigreward report RUN_ID --out DIR``: PNG plots and a Markdown summary of one run.

The run comes from a live server (``GET /v1/runs/{run_id}``, the default) or, with
``--data-dir`` / ``--database-url``, straight from the store the server writes (no server
needed). The plots are the ones of the web page's run view: training score, mean significant
and insignificant units, k, and mean length reward of correct and wrong answers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# One plot: file name, title, y label, and the history fields drawn as its series.
PLOTS: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    ("score.png", "Training score", "score", (("score", "score"),)),
    (
        "significance.png",
        "Mean significant / insignificant units",
        "units per response",
        (("mean_significant", "significant"), ("mean_insignificant", "insignificant")),
    ),
    ("k.png", "k after each step", "k", (("k_after", "k"),)),
    (
        "length_reward.png",
        "Mean length reward",
        "R_len",
        (
            ("mean_length_reward_correct", "correct"),
            ("mean_length_reward_wrong", "wrong"),
        ),
    ),
)

LAST_STEPS_IN_TABLE = 10


class ReportError(RuntimeError):
    """The run could not be fetched or read; the message says why."""


# ------------------------------------------------------------------------------- fetching


def fetch_run_http(url: str, run_id: str, api_key: str | None, timeout: float = 30.0) -> dict:
    """GET {url}/v1/runs/{run_id}; ReportError with the server's envelope message otherwise."""
    target = f"{url.rstrip('/')}/v1/runs/{urllib.parse.quote(run_id, safe='')}"
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(target, headers=headers)
    try:
        with opener.open(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            message = json.loads(raw)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = raw.decode(errors="replace")[:200]
        hint = " (pass --api-key)" if err.code == 401 else ""
        raise ReportError(f"GET {target} answered {err.code}: {message}{hint}") from err
    except (OSError, urllib.error.URLError) as err:
        raise ReportError(f"cannot reach {target}: {err}") from err


def fetch_run_store(run_id: str, data_dir: Path | None, database_url: str | None) -> dict:
    """The same document as GET /v1/runs/{run_id}, read from the store directly."""
    from sigreward.api.protocol import run_response
    from sigreward.domain.errors import RunNotFound
    from sigreward.domain.runs import RunService
    from sigreward.store import SQLITE_FILENAME, make_store

    if not database_url:
        assert data_dir is not None
        path = Path(data_dir) / SQLITE_FILENAME
        # Opening a missing SQLite file would create an empty store: refuse instead.
        if not path.is_file():
            raise ReportError(f"--data-dir {data_dir}: no store file {SQLITE_FILENAME} there")
    store = make_store(Path(data_dir or "."), database_url)
    try:
        return run_response(RunService(store, model_loaded=False).get_run(run_id)).model_dump()
    except RunNotFound as err:
        raise ReportError(f"run {run_id!r} not found in the store") from err
    finally:
        store.close()


# ------------------------------------------------------------------------------- plots


def _series(history: Sequence[dict], key: str) -> list[float]:
    """Values of ``key`` per step, NaN where the step has none (matplotlib leaves a gap)."""
    out: list[float] = []
    for entry in history:
        value = entry.get(key)
        out.append(float(value) if isinstance(value, (int, float)) else math.nan)
    return out


def write_plots(history: Sequence[dict], out: Path, run_id: str) -> list[Path]:
    """One PNG per entry of PLOTS; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [entry["step"] for entry in history]
    written: list[Path] = []
    for filename, title, ylabel, series in PLOTS:
        fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
        for key, label in series:
            ax.plot(steps, _series(history, key), marker="o", markersize=2.5, label=label)
        ax.set_title(f"{title} — {run_id}")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if len(series) > 1:
            ax.legend()
        fig.tight_layout()
        path = out / filename
        fig.savefig(path, format="png")
        plt.close(fig)
        written.append(path)
    return written


# ------------------------------------------------------------------------------- summary


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _first_last(history: Sequence[dict], key: str) -> tuple[float | None, float | None]:
    values = [entry.get(key) for entry in history if isinstance(entry.get(key), (int, float))]
    return (values[0], values[-1]) if values else (None, None)


def _change(first: float | None, last: float | None) -> str:
    if first is None or last is None:
        return "–"
    delta = last - first
    relative = f" ({delta / first:+.1%})" if first else ""
    return f"{_fmt(float(first))} → {_fmt(float(last))}, {delta:+.4f}{relative}"


def summary_markdown(run: dict) -> str:
    """summary.md: configuration, schedule state, first/last score, S/I change, last steps."""
    run_id = run["run_id"]
    config: dict = run.get("config") or {}
    schedule: dict = run.get("schedule") or {}
    history: list[dict] = schedule.get("history") or []
    lines = [f"# Run `{run_id}`", ""]
    lines += ["## Schedule", ""]
    lines += [
        f"- steps: {len(history)}",
        f"- last finished step: {_fmt(schedule.get('last_finished_step'))}",
        f"- last k: {_fmt(schedule.get('k'))}",
        f"- dynamic: {_fmt(schedule.get('dynamic'))}",
        f"- low slope count: {_fmt(schedule.get('low_slope_count'))}",
    ]
    first_score, last_score = _first_last(history, "score")
    lines += [
        f"- score (first → last): {_change(first_score, last_score)}",
        f"- mean significant units (first → last): "
        f"{_change(*_first_last(history, 'mean_significant'))}",
        f"- mean insignificant units (first → last): "
        f"{_change(*_first_last(history, 'mean_insignificant'))}",
        "",
    ]
    lines += ["## Configuration", "", "| field | value |", "|---|---|"]
    lines += [f"| {name} | {_fmt(config[name])} |" for name in sorted(config)]
    lines += ["", f"## Last {min(LAST_STEPS_IN_TABLE, len(history))} steps", ""]
    columns = (
        "step",
        "score",
        "samples",
        "k_before",
        "k_after",
        "mean_significant",
        "mean_insignificant",
        "mean_length_reward_correct",
        "mean_length_reward_wrong",
    )
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for entry in history[-LAST_STEPS_IN_TABLE:]:
        lines.append("| " + " | ".join(_fmt(entry.get(c)) for c in columns) + " |")
    lines += ["", "Plots: " + ", ".join(f"`{name}`" for name, *_ in PLOTS), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------- CLI


def write_report(run: dict, out: Path) -> list[Path]:
    """Write the PNGs and summary.md for ``run`` (a GET /v1/runs/{run_id} document) to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    history = (run.get("schedule") or {}).get("history") or []
    written = write_plots(history, out, run["run_id"])
    summary = out / "summary.md"
    summary.write_text(summary_markdown(run), encoding="utf-8")
    written.append(summary)
    return written


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``report`` sub-command to an ``argparse`` sub-parsers object."""
    parser = subparsers.add_parser(
        "report",
        help="write PNG plots and summary.md of one run",
        description="Write PNG plots (score, S/I means, k, length rewards) and summary.md of "
        "one run, read from a server (default) or directly from its store.",
    )
    parser.add_argument("run_id", metavar="RUN_ID")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument(
        "--url", default="http://127.0.0.1:8000", help="server base URL (default %(default)s)"
    )
    parser.add_argument(
        "--api-key", default=None, help="bearer token (default: $SIGREWARD_API_KEY if set)"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="read the SQLite store here instead of HTTP"
    )
    parser.add_argument(
        "--database-url", default=None, help="read this PostgreSQL store instead of HTTP"
    )
    parser.set_defaults(func=run_report)
    return parser


def run_report(args: argparse.Namespace) -> int:
    """Entry point of ``sigreward report``; 0 on success, 1 (message on stderr) otherwise."""
    import os

    try:
        if args.data_dir is not None or args.database_url:
            run = fetch_run_store(args.run_id, args.data_dir, args.database_url)
        else:
            api_key = args.api_key or os.environ.get("SIGREWARD_API_KEY") or None
            run = fetch_run_http(args.url, args.run_id, api_key)
        written = write_report(run, Path(args.out))
    except ReportError as err:
        print(f"sigreward report: {err}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -m sigreward.report``) with the same arguments."""
    parser = argparse.ArgumentParser(prog="sigreward")
    add_report_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
