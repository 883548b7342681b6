"""A rewards request's samples as the domain sees them, and every rule they must meet.

``SampleRequest`` is a sample as the client sent it (the API converts each request model
once); ``SampleInput`` is the same sample once its outcome is verified and its significance
counted, what ``RunService.score`` takes. ``check_limits`` and ``check_samples`` refuse a
request before the expensive scoring; ``check_scored`` repeats the run's rules inside the
score transaction, where the run's configuration is read under its lock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sigreward.bounds import MAX_LABEL_CHARS
from sigreward.domain.errors import RequestError, SampleError, TooLarge
from sigreward.domain.results import Counts
from sigreward.domain.run_config import RunConfig
from sigreward.reward.baselines import GROUP_REWARDS

L1_REWARDS = ("l1_exact", "l1_max")

# Values mode normalises in float64: any finite doubles work unless max - min itself
# overflows (then no normalised value is a number). The engine refuses the same input.
SPAN_ERROR = "the span max - min of the values overflows a double; rescale them"


@dataclass(frozen=True)
class SampleLimits:
    """The most samples (or texts) one request may hold, and the longest each may be."""

    max_samples: int
    max_chars: int

    def check_count(self, param: str, n: int, noun: str) -> None:
        if n > self.max_samples:
            raise TooLarge(param, f"{n} {noun} exceed the limit of {self.max_samples} per request")

    def check_length(self, param: str, length: int, unit: str | None = None) -> None:
        """``unit`` None: the message names the length alone ("N exceeds ...")."""
        if length > self.max_chars:
            size = f"{length} exceeds" if unit is None else f"{length} {unit} exceed"
            raise TooLarge(param, f"{size} the limit of {self.max_chars}")


@dataclass(frozen=True)
class GivenReference:
    """A "given" reference in exactly one form: its text, its values or its counts."""

    response: str | None = None
    significance: tuple[float, ...] | None = None
    counts: Counts | None = None


@dataclass(frozen=True)
class SampleRequest:
    """One sample as the client sent it, before verification and counting."""

    index: int
    id: str | None = None
    prompt_id: str | None = None
    response: str | None = None
    significance: tuple[float, ...] | None = None
    num_tokens: int | None = None
    target_tokens: int | None = None
    correct: bool | None = None
    label: str | None = None
    score: float | None = None
    reference: GivenReference | None = None


@dataclass(frozen=True)
class SampleInput:
    """One validated sample whose significance (if its run needs it) is already counted."""

    index: int
    id: str | None
    prompt_id: str | None
    correct: bool
    score: float
    counts: Counts | None = None
    reference: Counts | None = None
    num_tokens: int | None = None
    target_tokens: int | None = None


def value_span_ok(values: Sequence[float]) -> bool:
    return not values or math.isfinite(max(values) - min(values))


def check_limits(samples: Sequence[SampleRequest], limits: SampleLimits) -> None:
    """``TooLarge`` for more samples, or longer responses, than the server accepts."""
    limits.check_count("samples", len(samples), "samples")
    for sample in samples:
        fields: list[tuple[str, str | tuple[float, ...] | None]] = [
            ("response", sample.response),
            ("significance", sample.significance),
        ]
        if sample.reference is not None:
            fields += [
                ("reference.response", sample.reference.response),
                ("reference.significance", sample.reference.significance),
            ]
        for name, value in fields:
            if value is not None:
                unit = "characters" if isinstance(value, str) else "values"
                limits.check_length(f"samples[{sample.index}].{name}", len(value), unit)


def _check_run_modes(config: RunConfig, sample: SampleRequest | SampleInput) -> None:
    """What ``config``'s reward and reference modes need of one sample, sent or scored."""
    index, prompt_id = sample.index, sample.prompt_id
    if config.reward == "significance":
        if config.reference == "given" and sample.reference is None:
            raise SampleError(index, "reference", 'required when reference is "given"')
        if config.reference in ("first_seen", "group") and prompt_id is None:
            raise SampleError(
                index, "prompt_id", f'required when reference is "{config.reference}"'
            )
        return
    if sample.num_tokens is None:
        raise SampleError(index, "num_tokens", f'required by reward "{config.reward}"')
    if config.reward in L1_REWARDS and sample.target_tokens is None:
        raise SampleError(index, "target_tokens", f'required by reward "{config.reward}"')
    if config.reward in GROUP_REWARDS and prompt_id is None:
        raise SampleError(index, "prompt_id", f'required by reward "{config.reward}"')


def _check_outcome(sample: SampleRequest) -> None:
    if sample.correct is not None:
        return
    if sample.label is None:
        raise SampleError(
            sample.index, "correct", "required (or send label with response to verify it)"
        )
    if sample.response is None:
        raise SampleError(sample.index, "response", "required to verify label")
    # The verifier reads at most MAX_LABEL_CHARS of a label; comparing a cut label would
    # record a wrong outcome, so a longer one is refused instead.
    length = len(sample.label.strip())
    if length > MAX_LABEL_CHARS:
        raise SampleError(
            sample.index,
            "label",
            f"{length} characters exceed the verifier's limit of {MAX_LABEL_CHARS}; "
            "send correct instead",
        )


def _check_significance(config: RunConfig, sample: SampleRequest, model_loaded: bool) -> None:
    """The significance inputs of one sample of a significance-reward run."""
    i = sample.index
    ref = sample.reference
    if config.significance == "classifier":
        if not model_loaded:
            raise RequestError(
                "significance",
                "this run uses the classifier but the server has no model loaded "
                "(start it with --model)",
            )
        if sample.response is None:
            raise SampleError(i, "response", "required in classifier mode")
    elif sample.significance is None:
        raise SampleError(i, "significance", "required in values mode")
    for name, values in (
        ("significance", sample.significance),
        ("reference.significance", ref.significance if ref else None),
    ):
        if values is not None and not value_span_ok(values):
            raise SampleError(i, name, SPAN_ERROR)
    if config.reference != "given" or ref is None:
        return
    if ref.response is not None and config.significance != "classifier":
        raise SampleError(
            i,
            "reference.response",
            "a reference text needs classifier mode; send "
            "reference.significance or reference counts in values mode",
        )
    if ref.significance is not None and config.significance != "values":
        raise SampleError(
            i,
            "reference.significance",
            "reference values need values mode; send "
            "reference.response or reference counts in classifier mode",
        )


def check_samples(config: RunConfig, samples: Sequence[SampleRequest], model_loaded: bool) -> None:
    """Raise for the first sample the run cannot score: first what the run's modes need of
    every sample, then each sample's outcome fields and significance inputs."""
    if not samples:
        raise SampleError(None, "samples", "at least one sample is required")
    for sample in samples:
        _check_run_modes(config, sample)
    for sample in samples:
        _check_outcome(sample)
        if config.reward == "significance":
            _check_significance(config, sample, model_loaded)


def check_scored(config: RunConfig, samples: Sequence[SampleInput]) -> None:
    """``SampleError`` for the first scored sample that lacks what ``config``'s modes need;
    a missing ``counts`` under the significance reward names the field the client must
    send (``response`` or ``significance``)."""
    if not samples:
        raise SampleError(None, "samples", "at least one sample is required")
    for sample in samples:
        if config.reward == "significance" and sample.counts is None:
            wanted = "response" if config.significance == "classifier" else "significance"
            raise SampleError(sample.index, wanted, f"required in {config.significance} mode")
        _check_run_modes(config, sample)
