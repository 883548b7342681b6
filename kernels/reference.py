"""Torch implementation of ``significance_postprocess``: the oracle and the CPU path.

Inputs are flat ragged tensors in cu_seqlens style (docs/architecture.md, "Kernels"):
tokens -> words (``cu_words``) -> segments (``cu_segments``, the min-max unit) -> samples
(``cu_samples``, the unit that is counted and rewarded).

A word with no tokens is not a unit: it is left out of its segment's min/max and of the
counts, and its normalised value is 0.0. The engine never produces one; the rule only keeps
such input well defined.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

INPUT_KINDS = ("logit_diff", "values")


class SignificanceOutput(NamedTuple):
    word_values: Tensor  # (W,) float32, min-max normalised per segment
    significant: Tensor  # (N,) int32
    insignificant: Tensor  # (N,) int32
    length_reward: Tensor | None  # (N,) float32, or None when the reward stage is skipped


class RewardInputs(NamedTuple):
    correct: Tensor  # (N,) bool
    ref_significant: Tensor  # (N,) float
    ref_insignificant: Tensor  # (N,) float


def significance_postprocess(
    scores: Tensor,
    cu_words: Tensor,
    cu_segments: Tensor,
    cu_samples: Tensor,
    threshold: float,
    input_kind: str = "logit_diff",
    correct: Tensor | None = None,
    ref_significant: Tensor | None = None,
    ref_insignificant: Tensor | None = None,
    lambda_c: float = 5.0,
    lambda_w_n: float = 2.0,
    lambda_w_e: float = 5.0,
    k: float = 0.0,
    *,
    validate: bool = True,
) -> SignificanceOutput:
    """Normalised word values, per-sample counts and (optionally) length rewards."""
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {input_kind!r}")
    check_threshold(threshold)
    reward = check_reward_inputs(
        correct, ref_significant, ref_insignificant, cu_samples.numel() - 1, scores.device
    )
    if validate:
        check_scores(scores)
        check_offsets(scores.shape[0], cu_words, cu_segments, cu_samples, scores.device)
    values = scores.float()
    if input_kind == "logit_diff":
        values = torch.sigmoid(values)
    return _postprocess(
        values, cu_words, cu_segments, cu_samples, threshold, reward,
        (lambda_c, lambda_w_n, lambda_w_e, k),
    )  # fmt: skip


def significance_postprocess_fused(
    hidden: Tensor,
    w_diff: Tensor,
    b_diff: float | Tensor,
    cu_words: Tensor,
    cu_segments: Tensor,
    cu_samples: Tensor,
    threshold: float,
    correct: Tensor | None = None,
    ref_significant: Tensor | None = None,
    ref_insignificant: Tensor | None = None,
    lambda_c: float = 5.0,
    lambda_w_n: float = 2.0,
    lambda_w_e: float = 5.0,
    k: float = 0.0,
    *,
    validate: bool = True,
) -> SignificanceOutput:
    """As ``significance_postprocess`` with logit diff = hidden @ w_diff + b_diff (fp32)."""
    if validate:
        check_head(hidden, w_diff, b_diff)
    scores = hidden.float() @ w_diff.float() + _as_float_tensor(b_diff, hidden.device)
    return significance_postprocess(
        scores, cu_words, cu_segments, cu_samples, threshold, "logit_diff",
        correct, ref_significant, ref_insignificant, lambda_c, lambda_w_n, lambda_w_e, k,
        validate=validate,
    )  # fmt: skip


def _postprocess(
    values: Tensor,
    cu_words: Tensor,
    cu_segments: Tensor,
    cu_samples: Tensor,
    threshold: float,
    reward: RewardInputs | None,
    params: tuple[float, float, float, float],
) -> SignificanceOutput:
    device = values.device
    n_words = cu_words.numel() - 1
    n_segments = cu_segments.numel() - 1
    n_samples = cu_samples.numel() - 1
    word_len = (cu_words[1:] - cu_words[:-1]).long()
    seg_len = (cu_segments[1:] - cu_segments[:-1]).long()
    sample_len = (cu_samples[1:] - cu_samples[:-1]).long()

    token_word = torch.repeat_interleave(torch.arange(n_words, device=device), word_len)
    word_sum = torch.zeros(n_words, dtype=torch.float32, device=device)
    word_sum.index_add_(0, token_word, values)
    nonempty = word_len > 0
    word_mean = word_sum / word_len.clamp(min=1).float()

    word_seg = torch.repeat_interleave(torch.arange(n_segments, device=device), seg_len)
    inf = torch.tensor(math.inf, device=device)
    seg_min = torch.full((n_segments,), math.inf, device=device)
    seg_max = torch.full((n_segments,), -math.inf, device=device)
    seg_min.scatter_reduce_(0, word_seg, torch.where(nonempty, word_mean, inf), "amin")
    seg_max.scatter_reduce_(0, word_seg, torch.where(nonempty, word_mean, -inf), "amax")
    lo, hi = seg_min[word_seg], seg_max[word_seg]
    spread = hi > lo
    normalised = torch.where(spread, (word_mean - lo) / torch.where(spread, hi - lo, 1.0), 1.0)
    word_values = torch.where(nonempty, normalised, 0.0).float()

    below = word_values < threshold
    seg_sample = torch.repeat_interleave(torch.arange(n_samples, device=device), sample_len)
    word_sample = seg_sample[word_seg]
    significant = torch.zeros(n_samples, dtype=torch.int32, device=device)
    insignificant = torch.zeros(n_samples, dtype=torch.int32, device=device)
    significant.index_add_(0, word_sample, (nonempty & ~below).int())
    insignificant.index_add_(0, word_sample, (nonempty & below).int())

    length_reward = None
    if reward is not None:
        length_reward = length_reward_torch(significant, insignificant, reward, *params)
    return SignificanceOutput(word_values, significant, insignificant, length_reward)


def length_reward_torch(
    significant: Tensor,
    insignificant: Tensor,
    reward: RewardInputs,
    lambda_c: float,
    lambda_w_n: float,
    lambda_w_e: float,
    k: float,
) -> Tensor:
    """method.md section 2, vectorised over samples (float64 inside, float32 out)."""
    s = significant.double()
    i = insignificant.double()
    ref_s = reward.ref_significant.double()
    ref_i = reward.ref_insignificant.double()
    units = s + i
    usable = (units > 0) & (ref_s > 0) & (ref_i > 0)
    r_i = torch.where(usable, i / torch.where(usable, ref_i, 1.0), 0.0)
    r_s = torch.where(usable, s / torch.where(usable, ref_s, 1.0), 0.0)
    c = torch.cos(r_i.clamp(0.0, math.pi / 2))
    right = lambda_c * c
    wrong = (lambda_w_n * (c - 1.0) + k * r_s - lambda_w_e).clamp(max=0.0)
    out = torch.where(reward.correct.bool(), right, wrong)
    return torch.where(units > 0, out, 0.0).float()


# --- validation -----------------------------------------------------------------------------


def check_threshold(threshold: float) -> None:
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold}")


def check_scores(scores: Tensor) -> None:
    if scores.dim() != 1:
        raise ValueError(f"scores must be 1-D (T,), got shape {tuple(scores.shape)}")
    if not scores.dtype.is_floating_point:
        raise ValueError(f"scores must be a float tensor, got {scores.dtype}")


def check_head(hidden: Tensor, w_diff: Tensor, b_diff: float | Tensor) -> None:
    if hidden.dim() != 2:
        raise ValueError(f"hidden must be 2-D (T, d), got shape {tuple(hidden.shape)}")
    if not hidden.dtype.is_floating_point:
        raise ValueError(f"hidden must be a float tensor, got {hidden.dtype}")
    if w_diff.dim() != 1 or w_diff.shape[0] != hidden.shape[1]:
        raise ValueError(
            f"w_diff must have shape ({hidden.shape[1]},) to match hidden, "
            f"got {tuple(w_diff.shape)}"
        )
    if not w_diff.dtype.is_floating_point:
        raise ValueError(f"w_diff must be a float tensor, got {w_diff.dtype}")
    if w_diff.device != hidden.device:
        raise ValueError(f"w_diff is on {w_diff.device}, hidden on {hidden.device}")
    if isinstance(b_diff, Tensor):
        if b_diff.numel() != 1:
            raise ValueError(f"b_diff must be a scalar, got shape {tuple(b_diff.shape)}")
        if b_diff.device != hidden.device:
            raise ValueError(f"b_diff is on {b_diff.device}, hidden on {hidden.device}")


def check_offsets(
    n_tokens: int, cu_words: Tensor, cu_segments: Tensor, cu_samples: Tensor, device: torch.device
) -> None:
    """Raise ValueError naming the first bad offsets tensor.

    The common case costs one device sync: every check is folded into one boolean, and only
    when that fails are the checks repeated one by one to name the culprit.
    """
    named = (("cu_words", cu_words), ("cu_segments", cu_segments), ("cu_samples", cu_samples))
    for name, cu in named:
        if cu.dim() != 1:
            raise ValueError(f"{name} must be 1-D, got shape {tuple(cu.shape)}")
        if cu.dtype != torch.int32:
            raise ValueError(f"{name} must be int32, got {cu.dtype}")
        if cu.numel() < 1:
            raise ValueError(f"{name} must hold at least one offset (the leading 0)")
        if cu.device != device:
            raise ValueError(f"{name} is on {cu.device}, scores on {device}")
    ends = (
        ("cu_words", cu_words, n_tokens, "the number of tokens T"),
        ("cu_segments", cu_segments, cu_words.numel() - 1, "the number of words W"),
        ("cu_samples", cu_samples, cu_segments.numel() - 1, "the number of segments G"),
    )
    checks = [_offsets_ok(cu, end) for _, cu, end, _ in ends]
    if bool(torch.stack(checks).all()):
        return
    for (name, cu, end, what), ok in zip(ends, checks, strict=True):
        if bool(ok):
            continue
        if int(cu[0]) != 0:
            raise ValueError(f"{name} must start at 0, got {int(cu[0])}")
        if int(cu[-1]) != end:
            raise ValueError(f"{name} must end at {what} ({end}), got {int(cu[-1])}")
        bad = int(torch.nonzero(cu[1:] < cu[:-1])[0, 0])
        raise ValueError(
            f"{name} must be non-decreasing, but {name}[{bad + 1}] = {int(cu[bad + 1])} "
            f"< {name}[{bad}] = {int(cu[bad])}"
        )


def _offsets_ok(cu: Tensor, end: int) -> Tensor:
    ok = (cu[0] == 0) & (cu[-1] == end)
    if cu.numel() > 1:
        ok = ok & (cu[1:] >= cu[:-1]).all()
    return ok


def check_reward_inputs(
    correct: Tensor | None,
    ref_significant: Tensor | None,
    ref_insignificant: Tensor | None,
    n_samples: int,
    device: torch.device,
) -> RewardInputs | None:
    """All three reward tensors or none of them; each (N,) on the scores' device."""
    given = {
        "correct": correct,
        "ref_significant": ref_significant,
        "ref_insignificant": ref_insignificant,
    }
    missing = [name for name, t in given.items() if t is None]
    if len(missing) == 3:
        return None
    if missing:
        raise ValueError(f"the reward stage needs all of correct/ref_significant/"
                         f"ref_insignificant; missing: {', '.join(missing)}")  # fmt: skip
    for name, t in given.items():
        assert t is not None
        if t.dim() != 1 or t.shape[0] != n_samples:
            raise ValueError(f"{name} must have shape ({n_samples},), got {tuple(t.shape)}")
        if t.device != device:
            raise ValueError(f"{name} is on {t.device}, scores on {device}")
    assert correct is not None and ref_significant is not None and ref_insignificant is not None
    if correct.dtype != torch.bool:
        raise ValueError(f"correct must be a bool tensor, got {correct.dtype}")
    for name in ("ref_significant", "ref_insignificant"):
        if not given[name].dtype.is_floating_point:  # type: ignore[union-attr]
            raise ValueError(f"{name} must be a float tensor, got {given[name].dtype}")  # type: ignore[union-attr]
    return RewardInputs(correct, ref_significant, ref_insignificant)


def _as_float_tensor(b: float | Tensor, device: torch.device) -> Tensor:
    if isinstance(b, Tensor):
        return b.reshape(()).float()
    return torch.tensor(float(b), dtype=torch.float32, device=device)
