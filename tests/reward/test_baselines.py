"""Hand-worked cases of the length baselines (docs/method.md#baseline-length-rewards, api.md "Baselines")."""

import math

import pytest

from sigreward.reward import BaselineSample, baseline_rewards


def s(tokens: int, correct: bool = True, prompt: str | None = "p", target: int | None = None):
    return BaselineSample(
        score=1.0 if correct else 0.0,
        correct=correct,
        num_tokens=tokens,
        prompt_id=prompt,
        target_tokens=target,
    )


def test_kimi_group_min_max() -> None:
    # lengths 100, 200, 300: lam = 0.5, 0, -0.5; wrong keeps min(0, lam)
    out = baseline_rewards("kimi", [s(100), s(200, False), s(300, False)], {"weight": 1.0})
    assert out == pytest.approx([1.5, 0.0, -0.5])


def test_kimi_equal_lengths_gives_zero_term_and_groups_are_separate() -> None:
    samples = [s(50, prompt="a"), s(50, False, prompt="a"), s(10, prompt="b"), s(30, prompt="b")]
    assert baseline_rewards("kimi", samples, {}) == pytest.approx([1.0, 0.0, 1.5, 0.5])


def test_cosine_endpoints_and_exceed() -> None:
    params = {"max_tokens": 1000}
    out = baseline_rewards("cosine", [s(0), s(500), s(0, False), s(1000), s(999, False)], params)
    # L=0 correct: r0 = 2; L=500: 1 + 1*(1+cos(pi/2))/2 = 1.5; wrong L=0: -10; L>=max: -10
    wrong_999 = 0 + (-10 - 0) * (1 + math.cos(math.pi * 999 / 1000)) / 2
    assert out == pytest.approx([2.0, 1.5, -10.0, -10.0, wrong_999])


def test_dapo_soft_overlong() -> None:
    params = {"max_tokens": 100, "cache_tokens": 20}
    out = baseline_rewards("dapo", [s(80), s(90), s(100), s(101, False)], params)
    assert out == pytest.approx([1.0, 1.0 - 0.5, 1.0 - 1.0, -1.0])


def test_l1_exact_and_max() -> None:
    assert baseline_rewards("l1_exact", [s(1500, target=1000)], {"alpha": 0.001}) == (
        pytest.approx([0.5])
    )
    out = baseline_rewards(
        "l1_max", [s(1000, target=1500), s(3000, target=1000), s(900, False, target=1000)], {}
    )
    # 0.0003*500 + 0.5 = 0.65; 0.0003*(-2000)+0.5 < 0 -> 0; wrong -> 0
    assert out == pytest.approx([0.65, 0.0, 0.0])


def test_l1_needs_target_tokens() -> None:
    with pytest.raises(ValueError, match="target_tokens"):
        baseline_rewards("l1_exact", [s(10)], {})


def test_arora_zanette_uses_correct_samples_of_the_group() -> None:
    # correct lengths 100, 300: mean 200, population std 100
    samples = [s(100), s(300), s(500, False), s(7, prompt="q", correct=False)]
    out = baseline_rewards("arora_zanette", samples, {"alpha": 0.1})
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    assert out == pytest.approx([1 - 0.1 * sig(-1), 1 - 0.1 * sig(1), 0.0, 0.0], rel=1e-6)


def test_truncation() -> None:
    out = baseline_rewards("truncation", [s(10), s(11), s(5, False)], {"max_tokens": 10})
    assert out == [1.0, 0.0, 0.0]
