"""The rewards of one request's samples, once the step's k and their references are known:
the paper's significance reward or any other reward a run can name. No store, no schedule."""

from __future__ import annotations

from collections.abc import Sequence

from sigreward.domain.results import Counts, SampleResult
from sigreward.domain.run_config import RunConfig
from sigreward.domain.samples import SampleInput
from sigreward.reward.baselines import BaselineSample, baseline_rewards
from sigreward.reward.significance import SignificanceRewardParams, significance_length_reward


def _mean_counts(members: Sequence[Counts]) -> Counts:
    n = len(members)
    return Counts(
        sum(c.significant for c in members) / n, sum(c.insignificant for c in members) / n
    )


def request_means(samples: Sequence[SampleInput]) -> dict[str, Counts]:
    """Mean counts per prompt_id over this request's samples (the sample itself included)."""
    groups: dict[str, list[Counts]] = {}
    for sample in samples:
        if sample.prompt_id is not None and sample.counts is not None:
            groups.setdefault(sample.prompt_id, []).append(sample.counts)
    return {prompt_id: _mean_counts(members) for prompt_id, members in groups.items()}


def significance_results(
    config: RunConfig, samples: Sequence[SampleInput], references: Sequence[Counts], k: float
) -> list[SampleResult]:
    """The paper's reward of each sample against its reference, with the step's ``k``."""
    params = SignificanceRewardParams(
        config.lambda_c, config.lambda_w_n, config.lambda_w_e, config.degenerate_reference
    )
    results = []
    for sample, reference in zip(samples, references, strict=True):
        assert sample.counts is not None  # check_scored checked it
        length_reward, degenerate = significance_length_reward(
            sample.correct, sample.counts, reference, k, params
        )
        results.append(
            SampleResult(
                id=sample.id,
                length_reward=length_reward,
                reward=sample.score + length_reward,
                correct=sample.correct,
                significant=sample.counts.significant,
                insignificant=sample.counts.insignificant,
                reference_significant=reference.significant,
                reference_insignificant=reference.insignificant,
                degenerate_reference=degenerate,
            )
        )
    return results


def baseline_results(
    config: RunConfig, step: int, samples: Sequence[SampleInput]
) -> list[SampleResult]:
    """The reward every other reward a run can name gives each sample at ``step``."""
    inputs = [
        BaselineSample(
            score=s.score,
            correct=s.correct,
            num_tokens=s.num_tokens,  # type: ignore[arg-type]
            prompt_id=s.prompt_id,
            target_tokens=s.target_tokens,
        )
        for s in samples
    ]
    totals = baseline_rewards(config.reward, inputs, config.reward_params, step)
    return [
        SampleResult(
            id=s.id,
            length_reward=total - s.score,
            reward=total,
            correct=s.correct,
            significant=None if s.counts is None else s.counts.significant,
            insignificant=None if s.counts is None else s.counts.insignificant,
        )
        for s, total in zip(samples, totals, strict=True)
    ]
