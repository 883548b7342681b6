"""Supervised fine-tuning of the tiny GPT on a mix of full and quick traces."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from bench.study.policy import GPTConfig, TinyGPT, batch_ids, token_logprobs
from bench.study.task import Problem, TraceStyle, make_trace, random_problem


@dataclass(frozen=True)
class SFTConfig:
    steps: int = 1500
    batch: int = 64
    lr: float = 2e-3
    warmup: int = 100
    seed: int = 0


def train_sft(
    cfg: SFTConfig, style: TraceStyle, held_out: set[str], log=print
) -> tuple[TinyGPT, list[float]]:
    """Train from scratch; problems in `held_out` (their keys) are never trained on."""
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    model = TinyGPT(GPTConfig())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    losses: list[float] = []
    model.train()
    for step in range(cfg.steps):
        problems: list[Problem] = []
        while len(problems) < cfg.batch:
            p = random_problem(rng)
            if p.key not in held_out:
                problems.append(p)
        traces = [make_trace(p, rng, style)[0] for p in problems]
        ids, mask = batch_ids(problems, traces)
        loss = -(token_logprobs(model, ids) * mask).sum() / mask.sum()
        scale = min(1.0, (step + 1) / cfg.warmup)
        scale *= 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        for group in opt.param_groups:
            group["lr"] = cfg.lr * scale
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 250 == 0 or step == cfg.steps - 1:
            log(f"sft step {step}: loss {loss.item():.4f}")
    model.eval()
    return model, losses
