"""The whole study: SFT, references, classifier, a real server, every run, the report."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shlex
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import torch

from bench.study import classifier as cls
from bench.study.evaluate import evaluate
from bench.study.grpo import GRPOConfig, RunSpec, run
from bench.study.policy import sample, save_policy
from bench.study.report import write_report
from bench.study.sft import SFTConfig, train_sft
from bench.study.task import Problem, TraceStyle, filler_mask, random_problem

ROOT = Path(__file__).resolve().parents[2]
FULL_COMMAND = "python -m bench.study"


@dataclass(frozen=True)
class StudyConfig:
    sft: SFTConfig = SFTConfig()
    style: TraceStyle = TraceStyle()
    classifier: cls.ClassifierConfig = cls.ClassifierConfig()
    classifier_traces: int = 3000
    classifier_held_out: int = 300
    grpo: GRPOConfig = GRPOConfig()
    pool: int = 2048
    eval_prompts: int = 256
    jobs: int = 2
    seeds: int | None = None  # None: each variant's own number (5 or 3)
    variants: tuple[str, ...] = ()  # empty: all


# The end-to-end check of the test suite: every stage and every reward over HTTP, tiny sizes.
QUICK = StudyConfig(
    sft=SFTConfig(steps=60, batch=16),
    classifier=cls.ClassifierConfig(steps=30, batch=16),
    classifier_traces=100,
    classifier_held_out=20,
    grpo=GRPOConfig(steps=3, prompts=4, group=4, eval_every=2),
    pool=32,
    eval_prompts=24,
    seeds=1,
)


def _log(msg: str) -> None:
    print(f"[study {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _problem_rows(problems: list[Problem]) -> list[dict]:
    return [{"a": p.a, "b": p.b} for p in problems]


def prepare(cfg: StudyConfig, work: Path) -> dict:
    """SFT, held-out prompts, the reference pool and the classifier; returns their metadata."""
    meta_path = work / "prepare.json"
    if meta_path.exists():
        return json.loads(meta_path.read_text())
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(12345)
    eval_problems: list[Problem] = []
    seen: set[str] = set()
    while len(eval_problems) < cfg.eval_prompts:
        p = random_problem(rng)
        if p.key not in seen:
            seen.add(p.key)
            eval_problems.append(p)
    (work / "eval.json").write_text(json.dumps(_problem_rows(eval_problems)))

    # One thread: on a shared machine a second torch thread that finds no free core makes every
    # step several times slower (measured here: 0.4 s vs 3 s per SFT step under load).
    torch.set_num_threads(1)
    t0 = time.monotonic()
    policy, _losses = train_sft(cfg.sft, cfg.style, seen, log=_log)
    sft_seconds = time.monotonic() - t0
    save_policy(policy, str(work / "sft.pt"))
    sft_eval = evaluate(policy, eval_problems, cfg.grpo.max_new, seed=7)
    _log(f"SFT policy: {sft_eval}")

    # The reference of each training prompt: one T=1 sample of the SFT policy (as the paper).
    pool: list[Problem] = []
    while len(pool) < cfg.pool:
        p = random_problem(rng)
        if p.key not in seen:
            seen.add(p.key)
            pool.append(p)
    refs = sample(policy, pool, cfg.grpo.max_new, 1.0, torch.Generator().manual_seed(99))
    rows = [{**row, "reference": ref} for row, ref in zip(_problem_rows(pool), refs, strict=True)]
    (work / "pool.json").write_text(json.dumps(rows))
    no_insig = [min(filler_mask(r)) == 1 for r in refs]
    quick_refs = [len(r) <= 6 and r[:1] == [">"] for r in refs]

    traces = cls.labelled_traces(cfg.classifier_traces, 777, cfg.style)
    held_out = cls.labelled_traces(cfg.classifier_held_out, 778, cfg.style)
    t0 = time.monotonic()
    cls_dir = cls.train_classifier(work / "classifier", cfg.classifier, traces, log=_log)
    meta = {
        "sft": asdict(cfg.sft),
        "sft_seconds": sft_seconds,
        "sft_eval": sft_eval,
        "policy_params": policy.num_params(),
        "style": asdict(cfg.style),
        "eval_prompts": len(eval_problems),
        "eval_carry_share": sum(p.has_carry for p in eval_problems) / len(eval_problems),
        "references": {
            "no_insignificant": sum(no_insig) / len(refs),
            "quick": sum(quick_refs) / len(refs),
        },
        "classifier": {
            "dir": str(cls_dir),
            "steps": cfg.classifier.steps,
            "traces": len(traces),
            "held_out": len(held_out),
            "seconds": time.monotonic() - t0,
            "params": cls.num_params(cls_dir),
            "raw_accuracy": cls.raw_word_accuracy(cls_dir, held_out),
        },
    }
    (work / "classifier_held_out.json").write_text(json.dumps(held_out))
    meta_path.write_text(json.dumps(meta))
    return meta


def served_classifier_accuracy(base_url: str, held_out: list) -> dict:
    """Word accuracy of the classifier as the server counts (min-max, threshold 0.5)."""
    from sigreward_client import RewardClient

    with RewardClient(base_url, "classifier-check") as client:
        found = client.significance(texts=[" ".join(t) for t, _ in held_out]).results
    units = [r.units for r in found]
    values = [r.values for r in found]
    has_filler = [min(k) == 0 for _, k in held_out]

    def acc(select: bool | None) -> float:
        idx = [i for i, f in enumerate(has_filler) if select is None or f == select]
        return cls.word_accuracy(
            [units[i] for i in idx], [values[i] for i in idx], [held_out[i] for i in idx]
        )

    return {
        "served_accuracy": acc(None),
        "served_accuracy_filler": acc(True),
        "served_accuracy_no_filler": acc(False),
    }


def probe(base_url: str, variants: list[str], steps: int) -> dict[str, str]:
    """Variants whose run configuration the server refuses, with its message."""
    from bench.study.variants import BY_NAME, run_config_for
    from sigreward_client import APIError, RewardClient

    refused = {}
    for name in variants:
        with RewardClient(base_url, f"probe-{name}") as client:
            try:
                client.configure(**run_config_for(BY_NAME[name], steps))
                client.delete_run()
            except APIError as err:
                refused[name] = (
                    "this server does not offer the reward" if err.param == "reward" else str(err)
                )
    return refused


def run_all(
    cfg: StudyConfig, work: Path, base_url: str, variants: list[str], train: bool = True
) -> list[dict]:
    from bench.study.variants import BY_NAME

    specs = []
    for name in variants:
        for seed in range(cfg.seeds or BY_NAME[name].seeds):
            out = work / "runs" / f"{name}-s{seed}.json"
            specs.append(
                RunSpec(
                    variant=name,
                    seed=seed,
                    base_url=base_url,
                    policy_path=str(work / "sft.pt"),
                    pool_path=str(work / "pool.json"),
                    eval_path=str(work / "eval.json"),
                    out_path=str(out),
                    grpo=cfg.grpo,
                )
            )
    (work / "runs").mkdir(parents=True, exist_ok=True)
    todo = [s for s in specs if not Path(s.out_path).exists()]
    _log(f"{len(specs)} runs, {len(specs) - len(todo)} already done")
    if not train:
        return [json.loads(Path(s.out_path).read_text()) for s in specs if s not in todo]
    with ProcessPoolExecutor(max_workers=cfg.jobs, mp_context=get_context("spawn")) as pool:
        for spec, result in zip(todo, pool.map(run, todo), strict=True):
            last = result["evals"][-1]
            _log(
                f"{spec.run_id}: {result['seconds']:.0f} s, acc {last['acc']:.3f}, "
                f"length {last['length']:.1f}, quick {last['quick']:.3f}"
            )
    return [json.loads(Path(s.out_path).read_text()) for s in specs]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs visible, torch {torch.__version__}, Python {platform.python_version()}"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.study", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a few steps, one seed (the test)")
    p.add_argument(
        "--work-dir", type=Path, help="checkpoints and run results (default build/study[-quick])"
    )
    p.add_argument(
        "--report",
        type=Path,
        help="the page to write (default docs/study.md; --quick: WORK/study.md)",
    )
    p.add_argument("--variants", help="comma-separated variant names (default all)")
    p.add_argument("--seeds", type=int, help="seeds per variant (default 5 or 3 per variant)")
    p.add_argument("--steps", type=int, help="GRPO steps per run")
    p.add_argument("--eval-every", type=int)
    p.add_argument("--sft-steps", type=int)
    p.add_argument("--jobs", type=int, help="runs at a time (default 2)")
    p.add_argument(
        "--no-train",
        action="store_true",
        help="report the runs already in the work directory, train none",
    )
    return p.parse_args(list(argv))


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    cfg = QUICK if args.quick else StudyConfig()
    grpo = cfg.grpo
    if args.steps is not None:
        grpo = replace(grpo, steps=args.steps)
    if args.eval_every is not None:
        grpo = replace(grpo, eval_every=args.eval_every)
    cfg = replace(cfg, grpo=grpo)
    if args.sft_steps is not None:
        cfg = replace(cfg, sft=replace(cfg.sft, steps=args.sft_steps))
    if args.seeds is not None:
        cfg = replace(cfg, seeds=args.seeds)
    if args.jobs is not None:
        cfg = replace(cfg, jobs=args.jobs)
    if args.variants:
        cfg = replace(cfg, variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()))
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    from bench.study.variants import BY_NAME
    from tests.support.server import running_server

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    cfg = config_from_args(args)
    unknown = [v for v in cfg.variants if v not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; expected some of {sorted(BY_NAME)}")
    # Absolute: the server runs from the repository root, whatever the caller's directory.
    work = (args.work_dir or ROOT / "build" / ("study-quick" if args.quick else "study")).resolve()
    report = args.report or (work / "study.md" if args.quick else ROOT / "docs" / "study.md")
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    command = "python -m bench.study " + shlex.join(argv) if argv else FULL_COMMAND
    work.mkdir(parents=True, exist_ok=True)
    # A work directory can be filled by several invocations (resumed or extended studies):
    # the report lists them all.
    with open(work / "commands.txt", "a") as log:
        log.write(command + "\n")
    meta = prepare(cfg, work)
    held_out = json.loads((work / "classifier_held_out.json").read_text())
    server_env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with running_server(
        ["--model", meta["classifier"]["dir"], "--log-level", "warning"],
        env=server_env,
        data_dir=work / f"server-{int(time.time())}",
    ) as server:
        _log(f"sigreward serve on {server.base_url} (pid {server.pid})")
        meta["classifier"].update(served_classifier_accuracy(server.base_url, held_out))
        variants = list(cfg.variants or BY_NAME)
        skipped = probe(server.base_url, variants, cfg.grpo.steps)
        for name, why in skipped.items():
            _log(f"skipping {name}: {why}")
        results = run_all(
            cfg,
            work,
            server.base_url,
            [v for v in variants if v not in skipped],
            train=not args.no_train,
        )
    meta.update(
        {
            "command": command,
            # One command that trains everything this page shows from a fresh clone.
            "reproduce": "python -m bench.study " + shlex.join(a for a in argv if a != "--no-train")
            if argv
            else FULL_COMMAND,
            "commands": (work / "commands.txt").read_text().splitlines(),
            "full_command": FULL_COMMAND,
            "pilot": args.quick or args.no_train or cfg != StudyConfig(),
            "machine": machine(),
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "wall_s": time.monotonic() - started,
            "load": [load_before, os.getloadavg()[0]],
            "jobs": cfg.jobs,
            "grpo": asdict(cfg.grpo),
            "skipped": skipped,
        }
    )
    (work / "meta.json").write_text(json.dumps(meta, indent=1))
    write_report(report, meta, results)
    _log(f"report written to {report}")
    return 0
