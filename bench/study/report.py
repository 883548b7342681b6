"""docs/study.md and its plots, written from the study's run results (no number by hand)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.study.evaluate import METRICS
from bench.study.variants import BY_NAME

SECTIONS = (
    "## Configuration",
    "## Results at the last evaluation",
    "## Plots",
    "## Significance classifier",
    "## References and the schedule of k",
    "## Reading",
)


LABELS = {k: label for k, label, _ in METRICS} | {"degenerate": "degenerate refs"}


@dataclass(frozen=True)
class Spread:
    mean: float
    lo: float
    hi: float
    n: int

    def fmt(self, pattern: str) -> str:
        if math.isnan(self.mean):
            return "n/a"
        if self.n == 1:
            return pattern.format(self.mean)
        return f"{pattern.format(self.mean)} [{pattern.format(self.lo)}, {pattern.format(self.hi)}]"

    def disjoint(self, other: Spread) -> bool:
        """The two seed ranges do not overlap (needs at least two seeds on each side)."""
        if self.n < 2 or other.n < 2 or math.isnan(self.mean) or math.isnan(other.mean):
            return False
        return self.hi < other.lo or other.hi < self.lo


def spread(values: list[float]) -> Spread:
    xs = [v for v in values if not math.isnan(v)]
    if not xs:
        return Spread(math.nan, math.nan, math.nan, 0)
    return Spread(sum(xs) / len(xs), min(xs), max(xs), len(xs))


def final_spreads(results: list[dict]) -> dict[str, dict[str, Spread]]:
    """variant -> metric -> spread over seeds of the last evaluation."""
    out: dict[str, dict[str, Spread]] = {}
    for variant in _variants(results):
        runs = [r for r in results if r["variant"] == variant]
        keys = [k for k, _, _ in METRICS] + ["degenerate"]
        out[variant] = {}
        for key in keys:
            if key == "degenerate" and BY_NAME[variant].kind == "tokens":
                vals = []  # length baselines have no reference
            elif key == "degenerate":
                vals = [_mean([s["degenerate"] for s in r["steps"]]) for r in runs]
            else:
                vals = [float(r["evals"][-1][key]) for r in runs]
            out[variant][key] = spread(vals)
    return out


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def _variants(results: list[dict]) -> list[str]:
    order = list(BY_NAME)
    names = {r["variant"] for r in results}
    return [v for v in order if v in names]


# ---- plots ------------------------------------------------------------------------------------


def _curves(results: list[dict], variant: str, key: str) -> tuple[list[int], list[float]]:
    runs = [r for r in results if r["variant"] == variant]
    steps = [e["step"] for e in runs[0]["evals"]]
    means = [_mean([float(r["evals"][i][key]) for r in runs]) for i in range(len(steps))]
    return steps, means


def write_plots(results: list[dict], out_dir: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    variants = _variants(results)
    # Ten distinct colours, then the same colours dashed: more than ten variants stay readable.
    cmap = plt.get_cmap("tab10")
    colour = {v: cmap(i % 10) for i, v in enumerate(variants)}
    dash = {v: "-" if i < 10 else "--" for i, v in enumerate(variants)}

    fig, ax = plt.subplots(figsize=(8, 6))
    for v in variants:
        _, length = _curves(results, v, "length")
        _, acc = _curves(results, v, "acc")
        ax.plot(length, acc, dash[v], color=colour[v], alpha=0.8, label=v)
        ax.plot(length[0], acc[0], "o", color=colour[v], markersize=3)
        ax.plot(length[-1], acc[-1], "s", color=colour[v], markersize=6)
    ax.set_xlabel("mean response length, words (T=1)")
    ax.set_ylabel("accuracy (T=1)")
    ax.set_title("Accuracy against length over training (circle: start, square: end; seed mean)")
    ax.legend(fontsize=7)
    files["acc_length"] = _save(fig, out_dir / "acc_length.png", plt)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, key, title in (
        (axes[0], "quick_nocarry", "problems without a carry"),
        (axes[1], "quick_carry", "problems with a carry"),
    ):
        for v in variants:
            steps, share = _curves(results, v, key)
            ax.plot(steps, share, dash[v], color=colour[v], label=v)
        ax.set_title(f"quick-mode share (T=1), {title}")
        ax.set_xlabel("GRPO step")
    axes[0].set_ylabel("share of quick answers")
    axes[1].legend(fontsize=7)
    files["quick_share"] = _save(fig, out_dir / "quick_share.png", plt)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for v in variants:
        if BY_NAME[v].kind == "tokens":
            continue
        for i, r in enumerate(r for r in results if r["variant"] == v):
            ax.plot(
                [s["step"] for s in r["steps"]],
                [s["k"] for s in r["steps"]],
                dash[v],
                color=colour[v],
                alpha=0.7,
                label=v if i == 0 else None,
            )
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("k used for the step")
    ax.set_title("k of the dynamic schedule (significance variants, every seed)")
    ax.legend(fontsize=7)
    files["k"] = _save(fig, out_dir / "k.png", plt)
    return files


def _save(fig: Any, path: Path, plt: Any) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


# ---- the page ---------------------------------------------------------------------------------


def _table(spreads: dict[str, dict[str, Spread]], metrics: list[tuple[str, str, str]]) -> str:
    head = "| variant | seeds | " + " | ".join(label for _, label, _ in metrics) + " |"
    rule = "|---|---|" + "---|" * len(metrics)
    rows = [head, rule]
    for v, per in spreads.items():
        n = max(s.n for s in per.values())
        cells = [per[k].fmt(f) for k, _, f in metrics]
        rows.append(f"| {v} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _compare(spreads: dict[str, dict[str, Spread]], a: str, b: str, key: str, fmt: str) -> str:
    sa, sb = spreads[a][key], spreads[b][key]
    label = LABELS[key]
    if sa.n == 0 or sb.n == 0:
        return f"{label}: not measured"
    verdict = (
        "differs beyond the seed spread"
        if sa.disjoint(sb)
        else (
            "within the seed spread"
            if min(sa.n, sb.n) >= 2
            else "one seed only, no spread to judge"
        )
    )
    return f"{label} {sa.fmt(fmt)} vs {sb.fmt(fmt)} ({verdict})"


def reading(spreads: dict[str, dict[str, Spread]], meta: dict) -> list[str]:
    """Statements derived from the numbers; each names the comparison it rests on."""
    lines: list[str] = []
    have = set(spreads)
    fmt = {k: f for k, _, f in METRICS} | {"degenerate": "{:.3f}"}
    base = "outcome"
    if base in have:
        for v in spreads:
            if v == base:
                continue
            parts = [
                _compare(spreads, v, base, key, fmt[key])
                for key in ("acc", "length", "filler", "quick_carry", "acc_carry")
            ]
            lines.append(f"- **{v} vs {base}**: " + "; ".join(parts) + ".")
    if {"sig_oracle", "sig_random"} <= have:
        lines.append(
            "- **Information vs shape** (oracle labels vs random values, same reward): "
            + "; ".join(
                _compare(spreads, "sig_oracle", "sig_random", key, fmt[key])
                for key in ("filler", "length", "acc")
            )
            + "."
        )
    if {"sig_oracle", "length"} <= have:
        lines.append(
            "- **Significance vs a plain length penalty** (oracle vs linear): "
            + "; ".join(
                _compare(spreads, "sig_oracle", "length", key, fmt[key])
                for key in ("quick_carry", "acc_carry", "filler", "length")
            )
            + "."
        )
    if {"sig_classifier", "sig_oracle"} <= have:
        lines.append(
            "- **Trained classifier vs true labels**: "
            + "; ".join(
                _compare(spreads, "sig_classifier", "sig_oracle", key, fmt[key])
                for key in ("filler", "length", "acc")
            )
            + "."
        )
    if {"sig_oracle_floor", "sig_oracle"} <= have:
        lines.append(
            "- **Floored reference vs the paper's rule** (both with the true labels): "
            + "; ".join(
                _compare(spreads, "sig_oracle_floor", "sig_oracle", key, fmt[key])
                for key in ("filler", "length", "acc", "degenerate")
            )
            + "."
        )
    for v in ("sig_oracle", "sig_classifier"):
        if {v, "outcome"} <= have:
            lines.append(_paper_claim(spreads, v))
    degenerate = {v: s["degenerate"] for v, s in spreads.items() if BY_NAME[v].kind != "tokens"}
    if degenerate:
        lines.append(
            "- **Degenerate references**: share of training samples whose reference lacked "
            "significant or insignificant units (under the paper's rule the reward then ignores "
            "the sample's length; under the floor option it takes the missing count as 1): "
            + ", ".join(f"{v} {s.fmt('{:.3f}')}" for v, s in degenerate.items())
            + "."
        )
    return lines


def _run_seconds(results: list[dict]) -> str:
    secs = [r["seconds"] for r in results]
    text = f"{min(secs):.0f} to {max(secs):.0f} s (mean {_mean(secs):.0f} s, evaluations included)"
    cpu = [r["cpu_seconds"] for r in results if "cpu_seconds" in r]
    if cpu:
        text += f"; CPU time of the training process {min(cpu):.0f} to {max(cpu):.0f} s"
    return text


def _paper_claim(spreads: dict[str, dict[str, Spread]], v: str) -> str:
    """The paper's claim: the significance reward shortens responses without costing accuracy."""
    ours, base = spreads[v], spreads["outcome"]
    shorter = ours["length"].disjoint(base["length"]) and ours["length"].mean < base["length"].mean
    worse = ours["acc"].disjoint(base["acc"]) and ours["acc"].mean < base["acc"].mean
    if min(ours["acc"].n, base["acc"].n) < 2:
        verdict = "cannot be judged from one seed"
    elif shorter and not worse:
        verdict = "supported: shorter beyond the seed spread, accuracy not lower beyond it"
    elif shorter and worse:
        verdict = "contradicted: shorter, but accuracy is lower beyond the seed spread"
    elif worse:
        verdict = "contradicted: not shorter beyond the seed spread, and less accurate"
    else:
        verdict = "not shown: neither length nor accuracy differs beyond the seed spread"
    return (
        f"- **The paper's claim for {v}** (shorter responses at no accuracy cost, against "
        f"outcome only): {verdict}."
    )


def write_report(path: Path, meta: dict, results: list[dict]) -> None:
    spreads = final_spreads(results)
    plot_dir = path.parent / "study"
    files = write_plots(results, plot_dir)
    rel = plot_dir.name
    g = meta["grpo"]
    lines = [
        "# The GRPO length-reward study",
        "",
    ]
    if meta["pilot"]:
        lines += [
            f"> **Pilot, not the full study.** This page was produced by `{meta['command']}`, "
            "a reduced configuration (see below). The full study is "
            f"`{meta['full_command']}`; its numbers replace these when it is run. "
            f"To train and report this pilot in one command: `{meta['reproduce']}`.",
            "",
        ]
    lines += [
        "What do the field's length rewards, and the significance reward, do to a policy that can "
        "take a shortcut? A tiny GPT learns 3-digit addition (operand digits 0-6) by SFT on a mix "
        "of *full* column-by-column traces (with neutral filler phrases between the steps) and "
        "*quick* answers (the carry-less digit-wise sum, right exactly when nothing carries). "
        "GRPO then trains it under each reward; every reward was computed by a running "
        "`sigreward serve` over HTTP through the Python SDK. The task, the policy and the "
        "variants are described in [bench/study/README.md](../bench/study/README.md).",
        "",
        SECTIONS[0],
        "",
        f"- command: `{meta['command']}`",
        *(
            ["- the work directory was filled by: " + "; ".join(f"`{c}`" for c in meta["commands"])]
            if len(meta.get("commands", [])) > 1
            else []
        ),
        f"- machine: {meta['machine']}; date: {meta['date']}; wall time of this invocation {meta['wall_s'] / 60:.1f} min"
        f" ({meta['jobs']} runs at a time, one torch thread each)",
        f"- machine load (1-minute load average) at start and end: {meta['load'][0]:.1f}, "
        f"{meta['load'][1]:.1f}; one GRPO run took {_run_seconds(results)}",
        f"- policy: {meta['policy_params']} parameters; SFT {meta['sft']['steps']} steps of "
        f"{meta['sft']['batch']} traces ({meta['sft_seconds']:.0f} s), "
        f"quick share of SFT traces {meta['style']['quick_share']}",
        f"- GRPO: {g['steps']} steps of {g['prompts']} prompts x {g['group']} samples at T=1, "
        f"group-normalised advantages, token-mean loss, Adam {g['lr']}; evaluation every "
        f"{g['eval_every']} steps on {meta['eval_prompts']} held-out prompts "
        f"({meta['eval_carry_share']:.2f} of them with a carry)",
        "- variants and seeds: " + ", ".join(f"{v} ({spreads[v]['acc'].n})" for v in spreads),
    ]
    if meta.get("skipped"):
        lines.append(
            "- not run (the server refused the configuration): "
            + "; ".join(f"{v}: {why}" for v, why in meta["skipped"].items())
        )
    sft = meta["sft_eval"]
    lines += [
        f"- the SFT policy on the held-out prompts: accuracy T=1 {sft['acc']:.3f}, greedy "
        f"{sft['acc_greedy']:.3f}; quick share T=1 {sft['quick']:.3f} (greedy "
        f"{sft['quick_greedy']:.3f}); garbled T=1 {sft['garbled']:.3f} (greedy "
        f"{sft['garbled_greedy']:.3f}); quick share T=1 on problems with a carry "
        f"{sft['quick_carry']:.3f}, without {sft['quick_nocarry']:.3f}",
        "",
        SECTIONS[1],
        "",
        "Mean over seeds, [min, max] in brackets, at the last evaluation (held-out prompts; T=1 "
        "is one sample per prompt). *Garbled*: neither a clean quick answer nor a clean column "
        "trace once filler is removed. *Degenerate refs*: mean over training of the share of "
        "samples whose reference had no significant or no insignificant unit.",
        "",
        _table(spreads, list(METRICS[:6])),
        "",
        _table(spreads, list(METRICS[6:]) + [("degenerate", "degenerate refs", "{:.3f}")]),
        "",
        SECTIONS[2],
        "",
        f"![accuracy against length]({rel}/{files['acc_length']})",
        "",
        f"![quick-mode share]({rel}/{files['quick_share']})",
        "",
        f"![k over steps]({rel}/{files['k']})",
        "",
        SECTIONS[3],
        "",
        f"A {meta['classifier']['params']}-parameter BertForTokenClassification with a "
        "WordPiece vocabulary of the task's words, trained on "
        f"{meta['classifier']['traces']} labelled SFT traces (filler = drop, everything else = "
        f"keep) for {meta['classifier']['steps']} steps, served with `sigreward serve --model`. "
        f"Word-level accuracy on {meta['classifier']['held_out']} held-out traces:",
        "",
        f"- raw keep probability >= 0.5: {meta['classifier']['raw_accuracy']:.4f}",
        f"- as the service counts (min-max over the response, then < 0.5 is insignificant): "
        f"{meta['classifier']['served_accuracy']:.4f}; on traces without filler "
        f"{meta['classifier']['served_accuracy_no_filler']:.4f}, with filler "
        f"{meta['classifier']['served_accuracy_filler']:.4f}",
        "",
        SECTIONS[4],
        "",
        f"References are one T=1 sample of the SFT policy per training prompt. With the true "
        f"labels, {meta['references']['no_insignificant']:.3f} of them have no insignificant "
        f"word (quick answers {meta['references']['quick']:.3f}, filler-free traces the rest): "
        "the paper's rule then sets both ratios to 0, so a correct answer earns the full "
        "lambda_c whatever its length and a wrong one -lambda_w_e. The k plot shows the "
        "schedule the service ran for each significance run.",
        "",
        SECTIONS[5],
        "",
        "Generated from the table: two variants differ on a metric only when their [min, max] "
        "ranges over seeds do not overlap."
        + (
            " With as few seeds as here the ranges are narrow, so small differences may pass "
            "this rule and not survive more seeds; the large ones are the findings."
            if min(s["acc"].n for s in spreads.values()) < 3
            else ""
        ),
        "",
        *reading(spreads, meta),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
