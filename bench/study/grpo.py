"""One GRPO run of one variant and seed, every reward fetched from a running sigreward."""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bench.study.evaluate import evaluate
from bench.study.policy import batch_ids, load_policy, sample, token_logprobs
from bench.study.task import Problem, read_response
from bench.study.variants import BY_NAME, MAX_NEW, build_samples, run_config_for


@dataclass(frozen=True)
class GRPOConfig:
    steps: int = 300
    prompts: int = 16
    group: int = 8
    lr: float = 1e-4
    eval_every: int = 25
    max_new: int = MAX_NEW


@dataclass(frozen=True)
class RunSpec:
    variant: str
    seed: int
    base_url: str
    policy_path: str  # the SFT checkpoint
    pool_path: str  # JSON: training prompts with one SFT reference sample each
    eval_path: str  # JSON: held-out evaluation prompts
    out_path: str  # where the run's result JSON goes
    grpo: GRPOConfig

    @property
    def run_id(self) -> str:
        return f"{self.variant}-s{self.seed}"


def _problems(rows: list[dict]) -> list[Problem]:
    return [Problem(int(r["a"]), int(r["b"])) for r in rows]


def group_advantages(rewards: list[float], group: int) -> torch.Tensor:
    """(r - group mean) / (group std + 1e-6), groups of `group` consecutive samples."""
    r = torch.tensor(rewards, dtype=torch.float64).view(-1, group)
    adv = (r - r.mean(dim=1, keepdim=True)) / (r.std(dim=1, unbiased=False, keepdim=True) + 1e-6)
    return adv.view(-1).float()


def run(spec: RunSpec) -> dict:
    """Train, evaluate every `eval_every` steps and at the end, write and return the result."""
    from sigreward_client import RewardClient

    done = Path(spec.out_path)
    if done.exists():  # another invocation on the same work directory finished it meanwhile
        return json.loads(done.read_text())
    torch.set_num_threads(1)
    torch.manual_seed(spec.seed)
    cfg, variant = spec.grpo, BY_NAME[spec.variant]
    rng = random.Random(spec.seed)
    gen = torch.Generator().manual_seed(spec.seed)
    policy = load_policy(spec.policy_path)
    pool = json.loads(Path(spec.pool_path).read_text())
    eval_problems = _problems(json.loads(Path(spec.eval_path).read_text()))
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    evals: list[dict] = []
    steps: list[dict] = []
    started, cpu_started = time.monotonic(), time.process_time()
    with RewardClient(spec.base_url, spec.run_id, timeout=300) as client:
        client.configure(**run_config_for(variant, cfg.steps))
        for step in range(cfg.steps + 1):
            if step % cfg.eval_every == 0 or step == cfg.steps:
                evals.append(
                    {"step": step, **evaluate(policy, eval_problems, cfg.max_new, 1000 + step)}
                )
            if step == cfg.steps:
                break
            rows = [pool[rng.randrange(len(pool))] for _ in range(cfg.prompts)]
            rows = [r for r in rows for _ in range(cfg.group)]
            problems = _problems(rows)
            responses = sample(policy, problems, cfg.max_new, 1.0, gen)
            readings = [read_response(p, r) for p, r in zip(problems, responses, strict=True)]
            samples = build_samples(
                variant,
                step,
                [p.key for p in problems],
                responses,
                [x.correct for x in readings],
                [r["reference"] for r in rows],
                rng,
            )
            result = client.score(step, samples)
            adv = group_advantages(list(result.rewards), cfg.group)
            policy.train()
            ids, mask = batch_ids(problems, responses)
            logp = token_logprobs(policy, ids)
            # Token-mean loss: every response token of the batch weighs the same.
            loss = -(adv[:, None] * logp * mask).sum() / mask.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            degenerate = sum(bool(s.degenerate_reference) for s in result.samples)
            steps.append(
                {
                    "step": step,
                    "k": result.schedule.k,
                    "reward": sum(result.rewards) / len(result.rewards),
                    "accuracy": sum(x.correct for x in readings) / len(readings),
                    "length": sum(x.length for x in readings) / len(readings),
                    "quick": sum(x.mode == "quick" for x in readings) / len(readings),
                    "degenerate": degenerate / len(readings),
                }
            )
        client.finish_step(cfg.steps - 1)
        run_view = client.get_run()
    out = {
        "variant": spec.variant,
        "seed": spec.seed,
        "run_id": spec.run_id,
        "config": run_view.config,
        "grpo": asdict(cfg),
        "seconds": time.monotonic() - started,
        # CPU seconds of this process (the server's share is not in it): what a quiet core
        # would need, whatever the machine's load was.
        "cpu_seconds": time.process_time() - cpu_started,
        "evals": evals,
        "steps": steps,
    }
    Path(spec.out_path).write_text(json.dumps(out))
    return out
