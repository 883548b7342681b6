"""``RunService``: one atomic ``score`` per rewards request (api.md "Precise rules").

Inside one store write transaction ``score`` creates the run if needed, finishes every earlier
step (applying the schedule of docs/method.md#schedule-of-k), decides whether the request is late and
which k applies, resolves references (given / first_seen / group), computes the rewards,
answers retried sample ids with their stored results, and adds the rest to the step's
aggregates. The transaction commits durably before ``score`` returns; any exception leaves the
store as it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict

from sigreward.domain.errors import RequestError, RunConflict, RunNotFound, SampleError
from sigreward.domain.results import Counts, SampleResult, ScoreResult
from sigreward.domain.retries import (
    RetryCheck,
    answer_from_json,
    answer_json,
    is_resent,
    sample_result_from_json,
    sample_result_json,
)
from sigreward.domain.run_config import RunConfig, RunConfigPatch
from sigreward.domain.sample_rewards import baseline_results, request_means, significance_results
from sigreward.domain.samples import (
    SampleInput,
    SampleLimits,
    SampleRequest,
    check_limits,
    check_samples,
    check_scored,
)
from sigreward.domain.schedule import (
    K_WARNING_FACTOR,
    ScheduleState,
    apply_finished_step,
    base_k,
    initial_state,
)
from sigreward.domain.steps import add_to_step, check_step_jump
from sigreward.domain.views import RunView, run_view
from sigreward.store.base import FingerprintRecord, RunRecord, StepRecord, Store, Transaction

log = logging.getLogger(__name__)

# The store counter that numbers a run's samples for step-less (OpenRLHF) requests.
SAMPLE_COUNTER = "samples"
# The store counter of requests answered as suspected retries (RetryCheck).
RETRY_COUNTER = "suspected_retries"

# Called once per finished step whose k ends above K_WARNING_FACTOR * initial k:
# (run_id, step, k). The metrics layer counts these.
KWarningHook = Callable[[str, int, float], None]


class RunService:
    """Runs, their configuration, schedule, reference cache and per-step aggregates."""

    def __init__(
        self,
        store: Store,
        model_loaded: bool,
        on_k_warning: KWarningHook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.model_loaded = model_loaded
        self.on_k_warning = on_k_warning
        # Wall clock (seconds since the epoch, shared by replicas) of when a request is stored.
        self.clock = clock

    # configuration ------------------------------------------------------------------------
    def default_config(self) -> RunConfig:
        """The configuration a run gets when a rewards request names it without a PUT."""
        return RunConfig.resolve(RunConfigPatch(), self.model_loaded)

    def _new_record(self, run_id: str, config: RunConfig) -> RunRecord:
        return RunRecord(run_id, config.model_dump_json(), initial_state(config).to_json())

    def configure(self, run_id: str, patch: RunConfigPatch) -> tuple[RunConfig, bool]:
        """Create the run (True) or confirm it (False); ``RunConflict`` when fields differ.

        ``ValueError`` when the patch cannot be resolved; ``RewardParamError`` (a ValueError
        with ``param``) when a reward parameter is missing or bad.
        """
        with self.store.write() as tx:
            stored = tx.lock_run(run_id)
            if stored is None:
                # Resolved only on creation: an existing run compares the fields present.
                config = RunConfig.resolve(patch, self.model_loaded)
                stored, created = tx.ensure_run(self._new_record(run_id, config))
                if created:
                    return config, True
            existing = RunConfig.model_validate_json(stored.config_json)
        conflicts = existing.conflicts(patch)
        if conflicts:
            raise RunConflict(run_id, conflicts)
        return existing, False

    def get_config(self, run_id: str) -> RunConfig:
        """The stored configuration; ``RunNotFound`` when the run does not exist."""
        with self.store.read() as tx:
            record = tx.get_run(run_id)
        if record is None:
            raise RunNotFound(run_id)
        return RunConfig.model_validate_json(record.config_json)

    def effective_config(self, run_id: str) -> RunConfig:
        """The stored configuration, or the defaults a score would create; changes nothing."""
        with self.store.read() as tx:
            record = tx.get_run(run_id)
        if record is None:
            return self.default_config()
        return RunConfig.model_validate_json(record.config_json)

    def check_samples(
        self,
        run_id: str,
        samples: Sequence[SampleRequest],
        limits: SampleLimits,
        counted: bool = False,
    ) -> RunConfig:
        """Refuse a request before its samples are scored: ``TooLarge`` past ``limits``, a
        ``RequestError`` for what the run's (effective) configuration cannot score, and, with
        ``counted`` (no step given), a run without ``samples_per_step``. Changes nothing."""
        check_limits(samples, limits)
        config = self.effective_config(run_id)
        if counted and config.samples_per_step is None:
            raise RequestError(
                "step",
                "give the step, or set the run option samples_per_step "
                f"(PUT /v1/runs/{run_id}) so the server can count it",
            )
        check_samples(config, samples, self.model_loaded)
        return config

    # reading and deleting -----------------------------------------------------------------
    def get_run(self, run_id: str) -> RunView:
        with self.store.read() as tx:
            record = tx.get_run(run_id)
            if record is None:
                raise RunNotFound(run_id)
            return self._view(tx, record)

    def _view(self, tx: Transaction, record: RunRecord) -> RunView:
        return run_view(
            record,
            tx.finished_steps(record.run_id),
            counted_samples=tx.get_counter(record.run_id, SAMPLE_COUNTER),
            suspected_retries=tx.get_counter(record.run_id, RETRY_COUNTER),
        )

    def delete_run(self, run_id: str) -> None:
        with self.store.write() as tx:
            if not tx.delete_run(run_id):
                raise RunNotFound(run_id)

    def list_runs(self) -> list[str]:
        with self.store.read() as tx:
            return tx.list_runs()

    # finishing steps ----------------------------------------------------------------------
    def _finish_through(
        self,
        tx: Transaction,
        record: RunRecord,
        config: RunConfig,
        state: ScheduleState,
        through: int,
    ) -> ScheduleState:
        """Finish unfinished steps <= ``through`` in ascending order; return the new state."""
        for row in tx.unfinished_steps(record.run_id, through):
            if row.samples == 0:
                continue
            score = row.score_sum / row.samples
            state = apply_finished_step(state, config, row.step, score)
            row.finished = True
            row.k_after = state.k
            row.state_after_json = state.to_json()
            tx.put_step(row)
            if state.k_warning:
                log.warning(
                    "run %s: k = %.3f after step %d exceeds %.0fx its starting value %.3f",
                    record.run_id,
                    state.k,
                    row.step,
                    K_WARNING_FACTOR,
                    base_k(config),
                )
                if self.on_k_warning is not None:
                    self.on_k_warning(record.run_id, row.step, state.k)
        record.schedule_json = state.to_json()
        return state

    def finish_step(self, run_id: str, step: int) -> RunView:
        """Finish every step <= ``step`` explicitly; later requests for them are late."""
        if step < 0:
            raise ValueError("step must be >= 0")
        with self.store.write() as tx:
            record = tx.lock_run(run_id)
            if record is None:
                raise RunNotFound(run_id)
            config = RunConfig.model_validate_json(record.config_json)
            check_step_jump(record, config, step)
            state = ScheduleState.from_json(record.schedule_json)
            self._finish_through(tx, record, config, state, step)
            if record.finished_through is None or step > record.finished_through:
                record.finished_through = step
            tx.update_run(record)
            return self._view(tx, record)

    # scoring ------------------------------------------------------------------------------
    def score(
        self,
        run_id: str,
        step: int,
        samples: Sequence[SampleInput],
        retry: RetryCheck | None = None,
    ) -> ScoreResult:
        """Score ``samples`` for ``step`` of the run in one durable transaction."""
        if step < 0:
            raise ValueError("step must be >= 0")
        with self.store.write() as tx:
            record, _ = tx.ensure_run(self._new_record(run_id, self.default_config()))
            replay = self._replay(tx, run_id, retry)
            if replay is not None:
                return replay
            check_step_jump(record, RunConfig.model_validate_json(record.config_json), step)
            result = self._score_locked(tx, record, step, samples)
            self._remember(tx, run_id, retry, result)
            return result

    # retried requests without sample ids --------------------------------------------------
    def _replay(self, tx: Transaction, run_id: str, retry: RetryCheck | None) -> ScoreResult | None:
        """The stored answer when ``retry`` matches a recent request; counts the retry."""
        if retry is None or not retry.enabled:
            return None
        seen = tx.get_fingerprint(run_id, retry.fingerprint)
        if seen is None or not is_resent(retry.now - seen.seen_at, retry.window_s, retry.min_gap_s):
            return None
        tx.add_to_counter(run_id, RETRY_COUNTER, 1)
        log.info(
            "run %s: a request identical to one stored %.1f s ago was answered from it and not "
            "counted again (suspected retry)",
            run_id,
            retry.now - seen.seen_at,
        )
        return answer_from_json(seen.result_json)

    def _remember(
        self, tx: Transaction, run_id: str, retry: RetryCheck | None, result: ScoreResult
    ) -> None:
        if retry is None or not retry.enabled:
            return
        # When it was stored, not when it arrived: a resent copy can only follow a lost
        # answer, while identical responses generated together arrive before the first one
        # is stored and so never match.
        stored_at = self.clock()
        tx.put_fingerprint(
            run_id,
            retry.fingerprint,
            FingerprintRecord(result.step, answer_json(result), stored_at),
            prune_before=stored_at - retry.window_s,
        )

    # the sample counter (OpenRLHF's step-less requests) -----------------------------------
    def _reserve_samples(self, tx: Transaction, record: RunRecord, n: int) -> int:
        first = tx.add_to_counter(record.run_id, SAMPLE_COUNTER, n)
        if first == 0 and record.max_step is not None:
            # The run counted samples before it used the counter (explicit steps): start the
            # counter after them so derived steps continue where those left off.
            first = sum(row.samples for row in tx.finished_steps(record.run_id))
            first += sum(row.samples for row in tx.unfinished_steps(record.run_id, 2**62))
            tx.add_to_counter(record.run_id, SAMPLE_COUNTER, first)
        return first

    def score_counted(
        self, run_id: str, samples: Sequence[SampleInput], retry: RetryCheck | None = None
    ) -> ScoreResult:
        """``score`` with the step taken from the run's sample counter, in one transaction:
        the request's first sample index i gives step
        i // samples_per_step, and all its samples go to that step.

        Counting inside the score transaction makes the step exact under concurrency (a
        request can never be late because another one overtook it after choosing its step);
        a rejected request reserves no index. Never below the run's highest step, nor at or
        below an explicitly finished one, so mixing with explicit steps counts every sample.

        Retries never move the counter: samples whose ids were already counted go back to the
        step they were counted in (answered from the stored results), and a request matching
        ``retry`` is answered from the stored answer.
        """
        with self.store.write() as tx:
            record = tx.lock_run(run_id)
            if record is None:
                raise RunNotFound(run_id)
            config = RunConfig.model_validate_json(record.config_json)
            if config.samples_per_step is None:
                raise SampleError(
                    None, "samples", "the run has no samples_per_step to derive steps"
                )
            by_groups = config.samples_per_prompt is not None and all(
                s.prompt_id is not None for s in samples
            )
            if by_groups:
                full = self._full_group_step(tx, record, config, samples)
                if full is not None:
                    return self._resent_to_full_group(tx, record, full, samples, retry)
            else:
                replay = self._replay(tx, run_id, retry)
                if replay is not None:
                    return replay
            ids = [s.id for s in samples if s.id is not None]
            seen = tx.sample_steps(run_id, ids) if ids else {}
            if seen:
                # A retry of a request whose answer was lost: same step as the first time.
                fresh = sum(1 for s in samples if s.id is None or s.id not in seen)
                if fresh:
                    self._reserve_samples(tx, record, fresh)
                step = min(seen.values())
            else:
                first = self._reserve_samples(tx, record, len(samples))
                step = first // config.samples_per_step
                if record.max_step is not None:
                    step = max(step, record.max_step)
                if record.finished_through is not None:
                    step = max(step, record.finished_through + 1)
            result = self._score_locked(tx, record, step, samples)
            if by_groups and not result.late:
                self._add_to_groups(tx, run_id, step, samples)
            self._remember(tx, run_id, retry, result)
            return result

    # groups of known size (run option samples_per_prompt) ---------------------------------
    def _current_step(self, tx: Transaction, record: RunRecord, config: RunConfig) -> int:
        assert config.samples_per_step is not None
        step = tx.get_counter(record.run_id, SAMPLE_COUNTER) // config.samples_per_step
        return max(step, record.max_step or 0)

    def _full_group_step(
        self, tx: Transaction, record: RunRecord, config: RunConfig, samples: Sequence[SampleInput]
    ) -> int | None:
        """The step of the request's prompt groups when every one of them already holds
        samples_per_prompt samples counted in the current or the previous step (so this
        request can only be a resent copy); None otherwise."""
        assert config.samples_per_prompt is not None
        prompts = [s.prompt_id for s in samples if s.prompt_id is not None]
        groups = tx.get_prompt_groups(record.run_id, prompts)
        current = self._current_step(tx, record, config)
        steps = set()
        for prompt_id in set(prompts):
            group = groups.get(prompt_id)
            if group is None or group[0] < current - 1 or group[1] < config.samples_per_prompt:
                return None
            steps.add(group[0])
        return min(steps)

    def _resent_to_full_group(
        self,
        tx: Transaction,
        record: RunRecord,
        step: int,
        samples: Sequence[SampleInput],
        retry: RetryCheck | None,
    ) -> ScoreResult:
        """Answer a resent copy without moving the counter or the step's aggregates: from the
        identical request's stored answer when there is one, else scored with its groups'
        step's k (a real sample whose resent twin was counted in its place)."""
        tx.add_to_counter(record.run_id, RETRY_COUNTER, 1)
        if retry is not None and retry.enabled:
            seen = tx.get_fingerprint(record.run_id, retry.fingerprint)
            if seen is not None:
                return answer_from_json(seen.result_json)
        result = self._score_locked(tx, record, step, samples, count=False)
        result.suspected_retry = True
        return result

    def _add_to_groups(
        self, tx: Transaction, run_id: str, step: int, samples: Sequence[SampleInput]
    ) -> None:
        added: dict[str, int] = {}
        for sample in samples:
            if sample.prompt_id is not None:
                added[sample.prompt_id] = added.get(sample.prompt_id, 0) + 1
        groups = tx.get_prompt_groups(run_id, list(added))
        updated: dict[str, tuple[int, int]] = {}
        for prompt_id, n in added.items():
            group = groups.get(prompt_id)
            # A group lives in the step it started in and the next (a prompt's samples may
            # straddle one boundary); older ones are the same prompt in a later epoch.
            if group is not None and group[0] >= step - 1:
                updated[prompt_id] = (group[0], group[1] + n)
            else:
                updated[prompt_id] = (step, n)
        tx.put_prompt_groups(run_id, updated)

    def _score_locked(
        self,
        tx: Transaction,
        record: RunRecord,
        step: int,
        samples: Sequence[SampleInput],
        count: bool = True,
    ) -> ScoreResult:
        """The body of ``score`` inside a write transaction that holds the run's lock.
        ``count`` False: score only (a resent copy), the step's aggregates stay as they are."""
        run_id = record.run_id
        config = RunConfig.model_validate_json(record.config_json)
        check_scored(config, samples)
        state = ScheduleState.from_json(record.schedule_json)
        late = (record.max_step is not None and step < record.max_step) or (
            record.finished_through is not None and step <= record.finished_through
        )
        if late:
            before = tx.last_finished_before(run_id, step)
            if before is None or before.state_after_json is None:
                state = initial_state(config)
            else:
                state = ScheduleState.from_json(before.state_after_json)
        else:
            state = self._finish_through(tx, record, config, state, step - 1)

        if config.reward == "significance":
            references = self._references(tx, config, run_id, step, samples)
            results = significance_results(config, samples, references, state.k)
        else:
            results = baseline_results(config, step, samples)
        stored = tx.get_samples(run_id, step, [s.id for s in samples if s.id is not None])
        answered: dict[str, SampleResult] = {}
        final: list[SampleResult] = []
        counted: list[tuple[SampleInput, SampleResult]] = []
        for sample, result in zip(samples, results, strict=True):
            if sample.id is not None and sample.id in stored:
                result = sample_result_from_json(stored[sample.id])
            elif sample.id is not None and sample.id in answered:
                result = SampleResult(**{**asdict(answered[sample.id]), "duplicate": True})
            else:
                counted.append((sample, result))
                # A late request counts nothing, so a repeated id in it is no retry.
                if sample.id is not None and not late:
                    answered[sample.id] = result
            final.append(result)

        if not late:
            if count:
                self._count(tx, run_id, step, state, counted)
                record.max_step = step if record.max_step is None else max(record.max_step, step)
            # Also without counting: earlier steps may just have been finished.
            tx.update_run(record)
        return ScoreResult(
            run_id=run_id,
            step=step,
            samples=final,
            schedule=state,
            late=late,
        )

    def _count(
        self,
        tx: Transaction,
        run_id: str,
        step: int,
        state: ScheduleState,
        counted: Sequence[tuple[SampleInput, SampleResult]],
    ) -> None:
        """Add the counted samples to the step's aggregates and remember their ids."""
        if not counted:
            return
        row = tx.get_step(run_id, step) or StepRecord(
            run_id=run_id,
            step=step,
            k_before=state.k,
            dynamic_before=state.dynamic,
            low_before=state.low_slope_count,
        )
        add_to_step(row, counted)
        tx.put_step(row)
        tx.put_samples(
            run_id,
            step,
            [(s.id, sample_result_json(r)) for s, r in counted if s.id is not None],
        )

    def _references(
        self,
        tx: Transaction,
        config: RunConfig,
        run_id: str,
        step: int,
        samples: Sequence[SampleInput],
    ) -> list[Counts]:
        if config.reference == "given":
            return [s.reference for s in samples]  # type: ignore[misc]
        means = request_means(samples)
        if config.reference == "group":
            return [means[s.prompt_id] for s in samples]  # type: ignore[index]
        pinned = tx.get_references(run_id, list(means))
        new = {prompt_id: m for prompt_id, m in means.items() if prompt_id not in pinned}
        if new:
            tx.put_references(run_id, step, new)
            pinned.update(new)
        return [pinned[s.prompt_id] for s in samples]  # type: ignore[index]
