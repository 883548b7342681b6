"""What a length reward sees of one sample, and the prompt groups of one request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BaselineSample:
    score: float
    correct: bool
    num_tokens: int
    prompt_id: str | None = None
    target_tokens: int | None = None


def group_indices(samples: Sequence[BaselineSample]) -> dict[str | None, list[int]]:
    """Sample indices per ``prompt_id``, in request order: a prompt's group is its samples in
    one request (the API's rule for every group statistic)."""
    groups: dict[str | None, list[int]] = {}
    for i, sample in enumerate(samples):
        groups.setdefault(sample.prompt_id, []).append(i)
    return groups
