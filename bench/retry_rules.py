"""What each rule for resent /get_reward requests does, on simulated OpenRLHF rollouts.

OpenRLHF sends no sample ids; when an answer is lost it resends the same body. The server can
only compare bodies and their timing (``sigreward.domain.retries.is_resent``: the same fingerprint stored
between ``min_gap`` and ``window`` seconds before). This script simulates rollouts and counts,
for each rule:

- missed: resent copies counted a second time (each moves every later step boundary by +1);
- false: legitimate identical responses (same prompt, same text) answered from the first copy
  and not counted (each moves every later boundary by -1; its reward is the same either way).

The simulation (all times in seconds; seeded, so every run prints the same table):

- a step has ``--prompts`` prompts x ``--n`` samples, all generated concurrently; a sample is
  the prompt's one "collapsed" answer with probability ``--collapse`` (a policy that converged
  on a short answer), else a unique text;
- a prompt's samples start generating together, up to ``--group-spread`` seconds apart, and
  the prompts start at once (``--start-spread 0``) or spread uniformly over that many seconds
  (an engine whose batch is full queues sequences); decoding takes 0.03 s per token; the
  collapsed answer has 50 to 400 tokens, other answers 50 to 1500; the request arrives 0 to
  10 ms after the last token and is stored 50 ms later;
- an answer is lost with probability ``--loss``: 80 % at a gateway (502/503: OpenRLHF sees it
  at once, sleeps 1 s and resends), 20 % by its 180 s client timeout (resent 181 s after the
  first send).

The server's default is window 10 s, min gap 0.5 s (``--retry-window``; the gap is OpenRLHF's
1 s sleep before it resends, halved).

Usage: python bench/retry_rules.py [--collapse 0.6] [--start-spread 0] [--group-spread 0]
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sigreward.domain.retries import is_resent  # noqa: E402

RULES = [(0.0, 0.0), (2.0, 0.0), (10.0, 0.0), (200.0, 0.0), (10.0, 0.5), (200.0, 0.5)]
TOKEN_S = 0.03
STORE_S = 0.05
TRAIN_S = 30.0


@dataclass(frozen=True)
class Arrival:
    time: float
    fingerprint: str
    resent: bool
    group: str  # step/prompt: a prompt's n samples of one step


def simulate(args: argparse.Namespace, rng: random.Random) -> tuple[list[Arrival], int, int]:
    """Arrivals of every request of the run, the number of samples and of legit duplicates."""
    arrivals: list[Arrival] = []
    clock = 0.0
    samples = duplicates = 0
    for step in range(args.steps):
        last = clock
        for prompt in range(args.prompts):
            collapsed_len = rng.randint(50, 400)
            group_start = clock + rng.uniform(0.0, args.start_spread)
            seen_texts: set[str] = set()
            for sample in range(args.n):
                samples += 1
                if rng.random() < args.collapse:
                    text, length = "collapsed", collapsed_len
                else:
                    text, length = f"unique-{sample}", rng.randint(50, 1500)
                duplicates += text in seen_texts
                seen_texts.add(text)
                fingerprint = f"{step}/{prompt}/{text}"
                start = group_start + rng.uniform(0.0, args.group_spread)
                sent = start + length * TOKEN_S + rng.uniform(0.0, 0.01)
                group = f"{step}/{prompt}"
                arrivals.append(Arrival(sent, fingerprint, False, group))
                last = max(last, sent + STORE_S)
                if rng.random() < args.loss:
                    if rng.random() < 0.8:
                        again = sent + STORE_S + 1.0 + rng.uniform(0.0, 0.01)
                    else:
                        again = sent + 181.0
                    arrivals.append(Arrival(again, fingerprint, True, group))
                    last = max(last, again + STORE_S)
        clock = last + TRAIN_S
    arrivals.sort(key=lambda a: a.time)
    return arrivals, samples, duplicates


def apply_rule(arrivals: list[Arrival], window: float, min_gap: float) -> tuple[int, int]:
    """(missed resent copies, legit duplicates taken for resent ones) under one rule, with the
    server's bookkeeping: a counted request (re)stores its fingerprint's time."""
    stored: dict[str, float] = {}
    missed = false = 0
    for arrival in arrivals:
        seen = stored.get(arrival.fingerprint)
        resent = seen is not None and is_resent(arrival.time - seen, window, min_gap)
        if resent:
            false += not arrival.resent
            continue
        missed += arrival.resent
        stored[arrival.fingerprint] = arrival.time + STORE_S
    return missed, false


def apply_group_cap(arrivals: list[Arrival], n: int) -> tuple[int, int]:
    """The rule a known group size allows (run option ``samples_per_prompt``): count at most
    n samples per prompt and step; a resent copy that arrives before its group is complete is
    counted and displaces the group's last legitimate sample instead."""
    counts: dict[str, int] = {}
    missed = false = 0
    for arrival in arrivals:
        if counts.get(arrival.group, 0) >= n:
            false += not arrival.resent
            continue
        counts[arrival.group] = counts.get(arrival.group, 0) + 1
        missed += arrival.resent
    return missed, false


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--collapse", type=float, default=0.6)
    parser.add_argument("--start-spread", type=float, default=0.0)
    parser.add_argument("--group-spread", type=float, default=0.0)
    parser.add_argument("--loss", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    arrivals, samples, duplicates = simulate(args, random.Random(args.seed))
    resent = sum(a.resent for a in arrivals)
    print(f"# {platform.node()} {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# python {' '.join(sys.argv)}")
    print(
        f"# {samples} samples, {duplicates} legitimate identical responses, {resent} resent "
        f"copies (collapse {args.collapse}, start spread {args.start_spread} s, group spread "
        f"{args.group_spread} s)"
    )
    print("| rule | resent counted twice | legit samples not counted | boundary drift (samples) |")
    print("|---|---|---|---|")
    for window, min_gap in RULES:
        missed, false = apply_rule(arrivals, window, min_gap)
        print(
            f"| window {window:g} s, min gap {min_gap:g} s | {missed} | {false} | {missed - false} |"
        )
    missed, false = apply_group_cap(arrivals, args.n)
    print(f"| at most n={args.n} per prompt and step | {missed} | {false} | {missed - false} |")


if __name__ == "__main__":
    main()
