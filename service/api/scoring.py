"""The rewards request flow shared by POST /v1/rewards and the trainer adapters (openrlhf):
limits -> run config -> validate the samples against the run's modes -> verify labels ->
score significance through the batcher -> one RunService.submit transaction.

Nothing changes state before ``RunService.submit``, so a request rejected on the way changes
nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from sigreward.api.deps import domain_error, in_thread
from sigreward.api.errors import ApiError
from sigreward.api.protocol import RewardSample
from sigreward.api.state import ServiceState
from sigreward.batching import Timing
from sigreward.bounds import MAX_LABEL_CHARS
from sigreward.domain.run_config import RunConfig
from sigreward.domain.runs import RetryCheck
from sigreward.domain.types import Counts, SampleInput, SubmitResult
from sigreward.domain.verify import LabelVerifier, VerifierUnavailable


def check_limits(state: ServiceState, samples: Sequence[RewardSample]) -> None:
    """413 for more samples, or longer responses, than the server accepts."""
    settings = state.settings
    if len(samples) > settings.max_samples:
        raise ApiError(
            413,
            f"samples: {len(samples)} samples exceed the limit of {settings.max_samples} per request",
            param="samples",
        )
    limit = settings.max_chars_per_response
    for i, sample in enumerate(samples):
        fields = [("response", sample.response), ("significance", sample.significance)]
        if sample.reference is not None:
            fields += [
                ("reference.response", sample.reference.response),
                ("reference.significance", sample.reference.significance),
            ]
        for name, value in fields:
            if value is not None and len(value) > limit:
                unit = "characters" if isinstance(value, str) else "values"
                raise ApiError(
                    413,
                    f"samples[{i}].{name}: {len(value)} {unit} exceed the limit of {limit}",
                    param=f"samples[{i}].{name}",
                )


# Values mode normalises in float64: any finite doubles work unless max - min itself
# overflows (then no normalised value is a number). The engine refuses the same input.
SPAN_ERROR = "the span max - min of the values overflows a double; rescale them"


def value_span_ok(values: Sequence[float]) -> bool:
    return not values or math.isfinite(max(values) - min(values))


def _fail(index: int, field: str, message: str) -> ApiError:
    return ApiError(422, f"samples[{index}].{field}: {message}", param=f"samples[{index}].{field}")


def check_modes(state: ServiceState, config: RunConfig, samples: Sequence[RewardSample]) -> None:
    """What RunService.validate does not see: outcome fields, significance inputs, and the
    form of "given" references."""
    for i, sample in enumerate(samples):
        if sample.correct is None:
            if sample.label is None:
                raise _fail(i, "correct", "required (or send label with response to verify it)")
            if sample.response is None:
                raise _fail(i, "response", "required to verify label")
            # The verifier reads at most MAX_LABEL_CHARS of a label; comparing a cut label
            # would record a wrong outcome, so a longer one is refused instead.
            length = len(sample.label.strip())
            if length > MAX_LABEL_CHARS:
                raise _fail(
                    i,
                    "label",
                    f"{length} characters exceed the verifier's limit of {MAX_LABEL_CHARS}; "
                    "send correct instead",
                )
        if config.reward != "significance":
            continue
        if config.significance == "classifier":
            if not state.model_loaded:
                raise ApiError(
                    422,
                    "significance: this run uses the classifier but the server has no model "
                    "loaded (start it with --model)",
                    param="significance",
                )
            if sample.response is None:
                raise _fail(i, "response", "required in classifier mode")
        elif sample.significance is None:
            raise _fail(i, "significance", "required in values mode")
        for name, values in (
            ("significance", sample.significance),
            ("reference.significance", sample.reference.significance if sample.reference else None),
        ):
            if values is not None and not value_span_ok(values):
                raise _fail(i, name, SPAN_ERROR)
        ref = sample.reference
        if config.reference == "given" and ref is not None:
            if ref.response is not None and config.significance != "classifier":
                raise _fail(
                    i,
                    "reference.response",
                    "a reference text needs classifier mode; send "
                    "reference.significance or reference counts in values mode",
                )
            if ref.significance is not None and config.significance != "values":
                raise _fail(
                    i,
                    "reference.significance",
                    "reference values need values mode; send "
                    "reference.response or reference counts in classifier mode",
                )


async def _verify(
    verifier: LabelVerifier, config: RunConfig, samples: Sequence[RewardSample]
) -> dict[int, bool]:
    wanted = [i for i, s in enumerate(samples) if s.correct is None]
    if not wanted:
        return {}
    labels = [samples[i].label or "" for i in wanted]
    responses = [samples[i].response or "" for i in wanted]
    try:
        results = await in_thread(verifier.verify_many, labels, responses, config.verifier)
    except ValueError as exc:
        raise ApiError(422, f"verifier: {exc}", param="verifier") from exc
    except VerifierUnavailable as exc:
        # Never store an outcome that was not verified: the client retries the request.
        raise ApiError(503, f"{exc}; retry the request", headers={"Retry-After": "1"}) from exc
    return dict(zip(wanted, results, strict=True))


async def _count(
    state: ServiceState, config: RunConfig, samples: Sequence[RewardSample], timing: Timing
) -> tuple[list[Counts | None], list[Counts | None]]:
    """Own counts and given-reference counts per sample (None where not needed)."""
    n = len(samples)
    own: list[Counts | None] = [None] * n
    refs: list[Counts | None] = [None] * n
    if config.reward != "significance":
        return own, refs
    given = config.reference == "given"
    for i, sample in enumerate(samples):
        ref = sample.reference
        if given and ref is not None and ref.significant is not None:
            refs[i] = Counts(float(ref.significant), float(ref.insignificant or 0.0))
    assert state.batcher is not None
    threshold = config.significance_threshold
    if config.significance == "classifier":
        texts = [s.response or "" for s in samples]
        ref_at = [
            i
            for i, s in enumerate(samples)
            if given and s.reference and s.reference.response is not None
        ]
        texts += [samples[i].reference.response for i in ref_at]  # type: ignore[union-attr,misc]
        counts = await state.batcher.count_texts(texts, threshold, timing)
    else:
        values = [s.significance or [] for s in samples]
        ref_at = [
            i
            for i, s in enumerate(samples)
            if given and s.reference and s.reference.significance is not None
        ]
        values += [samples[i].reference.significance for i in ref_at]  # type: ignore[union-attr,misc]
        counts = await state.batcher.count_values(values, threshold, timing)
    own = list(counts[:n])
    for i, c in zip(ref_at, counts[n:], strict=True):
        refs[i] = c
    return own, refs


async def check_counted_run(state: ServiceState, run_id: str) -> None:
    """A request without a step needs an existing run with ``samples_per_step``."""
    assert state.runs is not None
    config: RunConfig = await in_thread(state.runs.effective_config, run_id)
    if config.samples_per_step is None:
        raise ApiError(
            422,
            "step: give the step, or set the run option samples_per_step "
            f"(PUT /v1/runs/{run_id}) so the server can count it",
            param="step",
        )


async def score_and_submit(
    state: ServiceState,
    run_id: str,
    step: int | None,
    samples: Sequence[RewardSample],
    timing: Timing | None = None,
    retry: RetryCheck | None = None,
) -> SubmitResult:
    """The whole rewards flow for one request; raises ApiError for every client error.

    ``step`` None: the step is taken from the run's sample counter inside the submit
    transaction (``RunService.submit_counted``; the run must exist and set
    ``samples_per_step``). ``retry``: answer a recent identical request from its result.
    """
    if state.runs is None or state.batcher is None or state.verifier is None:
        raise ApiError(503, "the server is not ready yet")
    if not samples:
        raise ApiError(422, "samples: at least one sample is required", param="samples")
    check_limits(state, samples)
    if step is None:
        await check_counted_run(state, run_id)
    config: RunConfig = await in_thread(state.runs.validate, run_id, samples)
    check_modes(state, config, samples)
    verified = await _verify(state.verifier, config, samples)
    try:
        own, refs = await _count(state, config, samples, timing or Timing())
    except Exception as exc:
        raise domain_error(exc) from exc
    inputs = []
    for i, sample in enumerate(samples):
        correct = sample.correct if sample.correct is not None else verified[i]
        score = sample.score if sample.score is not None else (1.0 if correct else 0.0)
        inputs.append(
            SampleInput(
                index=i,
                id=sample.id,
                prompt_id=sample.prompt_id,
                correct=correct,
                score=score,
                counts=own[i],
                reference=refs[i],
                num_tokens=sample.num_tokens,
                target_tokens=sample.target_tokens,
            )
        )
    if step is None:
        result: SubmitResult = await in_thread(state.runs.submit_counted, run_id, inputs, retry)
    else:
        result = await in_thread(state.runs.submit, run_id, step, inputs, retry)
    if result.suspected_retry:
        state.metrics.suspected_retries.inc()
        return result
    state.metrics.samples.inc(len(samples))
    # A late request answers with its old step's k: the gauge shows the run's current k.
    if result.schedule is not None and not result.schedule.late:
        state.metrics.observe_k(run_id, result.schedule.k)
    return result
