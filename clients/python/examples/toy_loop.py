"""A toy RL loop against a sigreward server: a fake policy answers arithmetic prompts, the
server verifies the answers and returns significance-aware length rewards and k.

    sigreward serve --port 8000 &                      # values mode (no model)
    python toy_loop.py --url http://127.0.0.1:8000

    sigreward serve --port 8000 --model ./checkpoint & # classifier mode
    python toy_loop.py --url http://127.0.0.1:8000 --classifier

In values mode the policy sends its own per-token significance values (here: high for the
words that carry the computation, low for filler); with ``--classifier`` it sends only text and
the server's classifier decides which words count. The fake policy drops filler over the steps,
so the printed mean length shrinks while k follows the schedule.
"""

from __future__ import annotations

import argparse
import random
import sys
import uuid

from sigreward_client import RewardClient

FILLER = ["hmm", "wait", "so", "well", "let", "me", "think", "again", "okay", "right"]


def respond(rng: random.Random, a: int, b: int, filler_rate: float) -> tuple[str, list[float]]:
    """One response and its per-word significance values (higher = more significant)."""
    words: list[str] = []
    values: list[float] = []

    def say(text: str, significant: bool) -> None:
        for word in text.split():
            words.append(word)
            base = 2.0 if significant else 0.2
            values.append(round(base + rng.uniform(-0.15, 0.15), 4))

    for part in (f"we add {a} and {b}.", f"{a} plus {b} is {a + b}.", "check the sum."):
        while rng.random() < filler_rate:
            say(rng.choice(FILLER), significant=False)
        say(part, significant=True)
    answer = a + b if rng.random() < 0.75 else a + b + rng.choice([-1, 1])
    say(f"the answer is \\boxed{{{answer}}}", significant=True)
    return " ".join(words), values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--run-id", default=None, help="default: toy-<random>")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--group", type=int, default=4, help="responses per prompt")
    parser.add_argument("--classifier", action="store_true", help="send texts, not values")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    run_id = args.run_id or f"toy-{uuid.uuid4().hex[:8]}"
    with RewardClient(args.url, run_id, api_key=args.api_key) as client:
        info = client.info()
        mode = "classifier" if args.classifier else "values"
        if mode not in info.get("significance_modes", []):
            print(f"server offers {info.get('significance_modes')}, not {mode}", file=sys.stderr)
            return 2
        # A short slope window so the schedule moves within a few steps (defaults: 50 / 10).
        client.configure(significance=mode, reference="group", slope_start_step=2, slope_period=2)
        print(
            f"run {run_id}: {mode} mode, model={info.get('model')}, backend={info.get('kernel_backend')}"
        )
        for step in range(args.steps):
            filler_rate = max(0.05, 0.7 - 0.12 * step)  # the "policy" learns to skip filler
            samples = []
            for p in range(args.prompts):
                a, b = rng.randint(2, 60), rng.randint(2, 60)
                for _ in range(args.group):
                    text, values = respond(rng, a, b, filler_rate)
                    sample = {"prompt_id": f"s{step}-p{p}", "response": text, "label": str(a + b)}
                    if not args.classifier:
                        sample["significance"] = values
                    samples.append(sample)
            result = client.score(step, samples)
            n = len(result.rewards)
            accuracy = sum(bool(c) for c in result.correct) / n
            mean_words = sum(len(s["response"].split()) for s in samples) / n
            print(
                f"step {step}: k={result.schedule.k:.3f} mean_reward={sum(result.rewards) / n:.3f} "
                f"mean_length_reward={sum(result.length_rewards) / n:.3f} "
                f"accuracy={accuracy:.2f} mean_words={mean_words:.1f}"
            )
        view = client.finish_step(args.steps - 1)
        assert view.schedule is not None
        for row in view.schedule.history:
            print(
                f"history step {row.step}: score={row.score:.3f} samples={row.samples} k_after={row.k_after:.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
