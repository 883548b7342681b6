"""Held-out evaluation of a policy: accuracy, length, filler, modes, and the carry split."""

from __future__ import annotations

import math

import torch

from bench.study.policy import TinyGPT, sample
from bench.study.task import Problem, Reading, read_response

# (key, label, format) in report order; every key is a number in `evaluate`'s answer.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("acc", "accuracy T=1", "{:.3f}"),
    ("acc_greedy", "accuracy greedy", "{:.3f}"),
    ("length", "mean length T=1", "{:.1f}"),
    ("filler", "filler tokens T=1", "{:.2f}"),
    ("quick", "quick share T=1", "{:.3f}"),
    ("garbled", "garbled share T=1", "{:.3f}"),
    ("quick_greedy", "quick share greedy", "{:.3f}"),
    ("quick_carry", "quick share, carry", "{:.3f}"),
    ("quick_nocarry", "quick share, no carry", "{:.3f}"),
    ("acc_carry", "accuracy, carry", "{:.3f}"),
    ("acc_nocarry", "accuracy, no carry", "{:.3f}"),
    ("wrong_length", "length of wrong answers", "{:.1f}"),
)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def summarize(problems: list[Problem], sampled: list[Reading], greedy: list[Reading]) -> dict:
    carry = [p.has_carry for p in problems]
    wrong = [r.length for r in sampled if not r.correct]

    def split(want: bool, field: str) -> float:
        rows = [r for r, c in zip(sampled, carry, strict=True) if c == want]
        if field == "quick":
            return _mean([float(r.mode == "quick") for r in rows])
        return _mean([float(r.correct) for r in rows])

    return {
        "acc": _mean([float(r.correct) for r in sampled]),
        "acc_greedy": _mean([float(r.correct) for r in greedy]),
        "length": _mean([float(r.length) for r in sampled]),
        "filler": _mean([float(r.filler) for r in sampled]),
        "quick": _mean([float(r.mode == "quick") for r in sampled]),
        "garbled": _mean([float(r.mode == "garbled") for r in sampled]),
        "quick_greedy": _mean([float(r.mode == "quick") for r in greedy]),
        "garbled_greedy": _mean([float(r.mode == "garbled") for r in greedy]),
        "quick_carry": split(True, "quick"),
        "quick_nocarry": split(False, "quick"),
        "acc_carry": split(True, "acc"),
        "acc_nocarry": split(False, "acc"),
        "wrong_length": _mean([float(x) for x in wrong]),
    }


def evaluate(model: TinyGPT, problems: list[Problem], max_new: int, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    sampled = sample(model, problems, max_new, 1.0, gen)
    greedy = sample(model, problems, max_new, 0.0)
    return summarize(
        problems,
        [read_response(p, r) for p, r in zip(problems, sampled, strict=True)],
        [read_response(p, r) for p, r in zip(problems, greedy, strict=True)],
    )
