"""The rewards request flow shared by POST /v1/rewards and the trainer adapters (openrlhf):
each request sample converted once into the domain's ``SampleRequest`` -> the run's rules
(``RunService.check_samples``) -> verify labels -> score significance through the batcher ->
one ``RunService.score`` transaction.

Nothing changes state before ``RunService.score``, so a request rejected on the way changes
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from sigreward.api.deps import domain_error, in_thread
from sigreward.api.errors import ApiError
from sigreward.api.protocol import RewardSample
from sigreward.api.state import ServiceState
from sigreward.batching import Timing
from sigreward.domain.errors import TooLarge
from sigreward.domain.results import Counts, ScoreResult
from sigreward.domain.retries import RetryCheck
from sigreward.domain.run_config import RunConfig
from sigreward.domain.samples import SampleInput, SampleLimits, SampleRequest
from sigreward.domain.verify import LabelVerifier, VerifierUnavailable


def sample_limits(state: ServiceState) -> SampleLimits:
    settings = state.settings
    return SampleLimits(settings.max_samples, settings.max_chars_per_response)


async def _verify(
    verifier: LabelVerifier, config: RunConfig, samples: Sequence[SampleRequest]
) -> dict[int, bool]:
    wanted = [s.index for s in samples if s.correct is None]
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
    state: ServiceState, config: RunConfig, samples: Sequence[SampleRequest], timing: Timing
) -> tuple[list[Counts | None], list[Counts | None]]:
    """Own counts and given-reference counts per sample (None where not needed)."""
    n = len(samples)
    own: list[Counts | None] = [None] * n
    refs: list[Counts | None] = [None] * n
    if config.reward != "significance":
        return own, refs
    given = config.reference == "given"
    if given:
        refs = [s.reference.counts if s.reference else None for s in samples]
    assert state.batcher is not None
    threshold = config.significance_threshold
    if config.significance == "classifier":
        ref_texts = {
            s.index: s.reference.response
            for s in samples
            if given and s.reference and s.reference.response is not None
        }
        texts = [s.response or "" for s in samples] + list(ref_texts.values())
        counts = await state.batcher.count_texts(texts, threshold, timing)
        ref_at = list(ref_texts)
    else:
        ref_values = {
            s.index: list(s.reference.significance)
            for s in samples
            if given and s.reference and s.reference.significance is not None
        }
        values = [list(s.significance or ()) for s in samples] + list(ref_values.values())
        counts = await state.batcher.count_values(values, threshold, timing)
        ref_at = list(ref_values)
    own = list(counts[:n])
    for i, c in zip(ref_at, counts[n:], strict=True):
        refs[i] = c
    return own, refs


def _scored(
    sample: SampleRequest, correct: bool, counts: Counts | None, reference: Counts | None
) -> SampleInput:
    return SampleInput(
        index=sample.index,
        id=sample.id,
        prompt_id=sample.prompt_id,
        correct=correct,
        score=sample.score if sample.score is not None else (1.0 if correct else 0.0),
        counts=counts,
        reference=reference,
        num_tokens=sample.num_tokens,
        target_tokens=sample.target_tokens,
    )


async def score(
    state: ServiceState,
    run_id: str,
    step: int | None,
    request_samples: Sequence[RewardSample],
    timing: Timing | None = None,
    retry: RetryCheck | None = None,
) -> ScoreResult:
    """The whole rewards flow for one request; raises ApiError for every client error.

    ``step`` None: the step is taken from the run's sample counter inside the score
    transaction (``RunService.score_counted``; the run must exist and set
    ``samples_per_step``). ``retry``: answer a recent identical request from its result.
    """
    if state.runs is None or state.batcher is None or state.verifier is None:
        raise ApiError(503, "the server is not ready yet")
    limits = sample_limits(state)
    try:
        # Before the conversion, so that a request with too many samples holds no copy of them.
        limits.check_count("samples", len(request_samples), "samples")
    except TooLarge as exc:
        raise domain_error(exc) from exc
    samples = [sample.to_sample(i) for i, sample in enumerate(request_samples)]
    config: RunConfig = await in_thread(
        state.runs.check_samples, run_id, samples, limits, step is None
    )
    verified = await _verify(state.verifier, config, samples)
    try:
        own, refs = await _count(state, config, samples, timing or Timing())
    except Exception as exc:
        raise domain_error(exc) from exc
    inputs = [
        _scored(s, s.correct if s.correct is not None else verified[s.index], own[i], refs[i])
        for i, s in enumerate(samples)
    ]
    if step is None:
        result: ScoreResult = await in_thread(state.runs.score_counted, run_id, inputs, retry)
    else:
        result = await in_thread(state.runs.score, run_id, step, inputs, retry)
    if result.suspected_retry:
        state.metrics.suspected_retries.inc()
        return result
    state.metrics.samples.inc(len(samples))
    # A late request answers with its old step's k: the gauge shows the run's current k.
    if not result.late:
        state.metrics.observe_k(run_id, result.schedule.k)
    return result
