"""The run domain: one atomic ``submit`` per rewards request (api.md "Precise rules").

Inside one store write transaction ``submit`` creates the run if needed, finishes every earlier
step (applying the schedule of method.md section 3), decides whether the request is late and
which k applies, resolves references (given / first_seen / group), computes the rewards,
answers retried sample ids with their stored results, and adds the rest to the step's
aggregates. The transaction commits durably before ``submit`` returns; any exception leaves the
store as it was.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from service.reward.baselines import GROUP_REWARDS, BaselineSample, baseline_rewards
from service.reward.significance import SignificanceRewardParams, significance_length_reward
from service.run_config import RunConfig, RunConfigPatch
from service.schedule import (
    K_WARNING_FACTOR,
    ScheduleState,
    apply_finished_step,
    base_k,
    initial_state,
)
from service.store.base import RunRecord, StepRecord, Store, Transaction
from service.types import Counts, SampleInput, SampleResult, ScheduleView, SubmitResult

log = logging.getLogger(__name__)

# The store counter that numbers a run's samples for step-less (OpenRLHF) requests.
SAMPLE_COUNTER = "samples"
L1_REWARDS = ("l1_exact", "l1_max")

# Called once per finished step whose k ends above K_WARNING_FACTOR * initial k:
# (run_id, step, k). The metrics layer counts these.
KWarningHook = Callable[[str, int, float], None]


class RunNotFound(LookupError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} does not exist")
        self.run_id = run_id


class RunConflict(Exception):
    """PUT of an existing run with different values for the listed fields (409)."""

    def __init__(self, run_id: str, fields: list[str]) -> None:
        super().__init__(
            f"run {run_id!r} exists with a different configuration: {', '.join(fields)}"
        )
        self.run_id = run_id
        self.fields = fields


class SampleError(ValueError):
    """A sample lacks what its run's modes need (422); names the sample index and field."""

    def __init__(self, index: int | None, field: str, message: str) -> None:
        # index None: the error concerns the samples list itself (e.g. it is empty).
        self.param = "samples" if index is None else f"samples[{index}].{field}"
        super().__init__(f"{self.param}: {message}")
        self.index = index
        self.field = field


@dataclass(frozen=True)
class HistoryEntry:
    """One finished step, as GET /v1/runs/{run_id} shows it."""

    step: int
    score: float
    samples: int
    k_before: float
    k_after: float
    mean_significant: float | None
    mean_insignificant: float | None
    mean_length_reward_correct: float | None
    mean_length_reward_wrong: float | None
    degenerate_references: int


@dataclass(frozen=True)
class RunScheduleView:
    k: float
    dynamic: bool
    low_slope_count: int
    last_finished_step: int | None
    k_warning: bool
    max_step: int | None
    finished_through: int | None
    history: list[HistoryEntry] = field(default_factory=list)


@dataclass(frozen=True)
class RunView:
    run_id: str
    config: RunConfig
    schedule: RunScheduleView

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of GET /v1/runs/{run_id} (and of the finish endpoint)."""
        return {
            "run_id": self.run_id,
            "config": self.config.model_dump(),
            "schedule": asdict(self.schedule),
        }


def _has(sample: Any, name: str) -> bool:
    return getattr(sample, name, None) is not None


def validate_samples(config: RunConfig, samples: Sequence[Any]) -> None:
    """Raise ``SampleError`` for the first sample that lacks what ``config``'s modes need.

    Works on ``SampleInput`` and on any request object with the same attribute names
    (``prompt_id``, ``reference``, ``num_tokens``, ``target_tokens``), so the API can call it
    before the expensive scoring. On objects that carry ``counts`` (``SampleInput``), a missing
    ``counts`` under the significance reward is reported as the field the client must send
    (``response`` or ``significance``).
    """
    if not samples:
        raise SampleError(None, "samples", "at least one sample is required")
    for position, sample in enumerate(samples):
        index = getattr(sample, "index", position)
        if not isinstance(index, int):
            index = position
        if config.reward == "significance":
            if hasattr(sample, "counts") and sample.counts is None:
                wanted = "response" if config.significance == "classifier" else "significance"
                raise SampleError(index, wanted, f"required in {config.significance} mode")
            if config.reference == "given" and not _has(sample, "reference"):
                raise SampleError(index, "reference", 'required when reference is "given"')
            if config.reference in ("first_seen", "group") and not _has(sample, "prompt_id"):
                raise SampleError(
                    index, "prompt_id", f'required when reference is "{config.reference}"'
                )
            continue
        if not _has(sample, "num_tokens"):
            raise SampleError(index, "num_tokens", f'required by reward "{config.reward}"')
        if config.reward in L1_REWARDS and not _has(sample, "target_tokens"):
            raise SampleError(index, "target_tokens", f'required by reward "{config.reward}"')
        if config.reward in GROUP_REWARDS and not _has(sample, "prompt_id"):
            raise SampleError(index, "prompt_id", f'required by reward "{config.reward}"')


def _mean_counts(members: Sequence[Counts]) -> Counts:
    n = len(members)
    return Counts(
        sum(c.significant for c in members) / n, sum(c.insignificant for c in members) / n
    )


def _request_means(samples: Sequence[SampleInput]) -> dict[str, Counts]:
    """Mean counts per prompt_id over this request's samples (the sample itself included)."""
    groups: dict[str, list[Counts]] = {}
    for sample in samples:
        if sample.prompt_id is not None and sample.counts is not None:
            groups.setdefault(sample.prompt_id, []).append(sample.counts)
    return {prompt_id: _mean_counts(members) for prompt_id, members in groups.items()}


def _result_json(result: SampleResult) -> str:
    data = asdict(result)
    data.pop("duplicate")
    return json.dumps(data, allow_nan=False)


def _result_from_json(text: str) -> SampleResult:
    return SampleResult(**json.loads(text), duplicate=True)


def _history_entry(row: StepRecord) -> HistoryEntry:
    def mean(total: float, n: int) -> float | None:
        return total / n if n else None

    return HistoryEntry(
        step=row.step,
        score=row.score_sum / row.samples,
        samples=row.samples,
        k_before=row.k_before,
        k_after=row.k_after if row.k_after is not None else row.k_before,
        mean_significant=mean(row.significant_sum, row.counted),
        mean_insignificant=mean(row.insignificant_sum, row.counted),
        mean_length_reward_correct=mean(row.lr_correct_sum, row.n_correct),
        mean_length_reward_wrong=mean(row.lr_wrong_sum, row.n_wrong),
        degenerate_references=row.degenerate,
    )


class RunService:
    """Runs, their configuration, schedule, reference cache and per-step aggregates."""

    def __init__(
        self, store: Store, model_loaded: bool, on_k_warning: KWarningHook | None = None
    ) -> None:
        self.store = store
        self.model_loaded = model_loaded
        self.on_k_warning = on_k_warning

    # configuration ------------------------------------------------------------------------
    def default_config(self) -> RunConfig:
        """The configuration a run gets when a rewards request names it without a PUT."""
        return RunConfig.resolve(RunConfigPatch(), self.model_loaded)

    def _new_record(self, run_id: str, config: RunConfig) -> RunRecord:
        return RunRecord(run_id, config.model_dump_json(), initial_state(config).to_json())

    def put_run(self, run_id: str, patch: RunConfigPatch) -> tuple[RunConfig, bool]:
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

    def get_config(self, run_id: str, create: bool = False) -> RunConfig:
        """The stored configuration; with ``create`` a missing run is created with defaults."""
        if create:
            with self.store.write() as tx:
                stored, _ = tx.ensure_run(self._new_record(run_id, self.default_config()))
                return RunConfig.model_validate_json(stored.config_json)
        with self.store.read() as tx:
            record = tx.get_run(run_id)
        if record is None:
            raise RunNotFound(run_id)
        return RunConfig.model_validate_json(record.config_json)

    def effective_config(self, run_id: str) -> RunConfig:
        """The stored configuration, or the defaults a submit would create; changes nothing."""
        with self.store.read() as tx:
            record = tx.get_run(run_id)
        if record is None:
            return self.default_config()
        return RunConfig.model_validate_json(record.config_json)

    def validate(self, run_id: str, samples: Sequence[Any]) -> RunConfig:
        """Check ``samples`` against the run's (effective) configuration before scoring them."""
        config = self.effective_config(run_id)
        validate_samples(config, samples)
        return config

    # reading and deleting -----------------------------------------------------------------
    def get_run(self, run_id: str) -> RunView:
        with self.store.read() as tx:
            record = tx.get_run(run_id)
            if record is None:
                raise RunNotFound(run_id)
            return self._view(tx, record)

    def _view(self, tx: Transaction, record: RunRecord) -> RunView:
        state = ScheduleState.from_json(record.schedule_json)
        history = [_history_entry(row) for row in tx.finished_steps(record.run_id)]
        return RunView(
            run_id=record.run_id,
            config=RunConfig.model_validate_json(record.config_json),
            schedule=RunScheduleView(
                k=state.k,
                dynamic=state.dynamic,
                low_slope_count=state.low_slope_count,
                last_finished_step=state.last_finished_step,
                k_warning=state.k_warning,
                max_step=record.max_step,
                finished_through=record.finished_through,
                history=history,
            ),
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

    def finish(self, run_id: str, step: int) -> RunView:
        """Finish every step <= ``step`` explicitly; later requests for them are late."""
        if step < 0:
            raise ValueError("step must be >= 0")
        with self.store.write() as tx:
            record = tx.lock_run(run_id)
            if record is None:
                raise RunNotFound(run_id)
            config = RunConfig.model_validate_json(record.config_json)
            state = ScheduleState.from_json(record.schedule_json)
            self._finish_through(tx, record, config, state, step)
            if record.finished_through is None or step > record.finished_through:
                record.finished_through = step
            tx.update_run(record)
            return self._view(tx, record)

    # submitting ---------------------------------------------------------------------------
    def submit(self, run_id: str, step: int, samples: Sequence[SampleInput]) -> SubmitResult:
        """Score ``samples`` for ``step`` of the run in one durable transaction."""
        if step < 0:
            raise ValueError("step must be >= 0")
        with self.store.write() as tx:
            record, _ = tx.ensure_run(self._new_record(run_id, self.default_config()))
            return self._submit_locked(tx, record, step, samples)

    # the sample counter (OpenRLHF's step-less requests) -----------------------------------
    def _assign_locked(self, tx: Transaction, record: RunRecord, n: int) -> int:
        first = tx.add_to_counter(record.run_id, SAMPLE_COUNTER, n)
        if first == 0 and record.max_step is not None:
            # The run counted samples before it used the counter (explicit steps): start the
            # counter after them so derived steps continue where those left off.
            first = sum(row.samples for row in tx.finished_steps(record.run_id))
            first += sum(row.samples for row in tx.unfinished_steps(record.run_id, 2**62))
            tx.add_to_counter(record.run_id, SAMPLE_COUNTER, first)
        return first

    def assign_samples(self, run_id: str, n: int) -> int:
        """Reserve ``n`` consecutive sample indices of the run; return the first (durable)."""
        if n < 0:
            raise ValueError("n must be >= 0")
        with self.store.write() as tx:
            record = tx.lock_run(run_id)
            if record is None:
                raise RunNotFound(run_id)
            return self._assign_locked(tx, record, n)

    def submit_counted(self, run_id: str, samples: Sequence[SampleInput]) -> SubmitResult:
        """``submit`` with the step taken from the run's sample counter, in one transaction:
        the request's first sample index i (``assign_samples``) gives step
        i // samples_per_step, and all its samples go to that step.

        Counting inside the submit transaction makes the step exact under concurrency (a
        request can never be late because another one overtook it after choosing its step);
        a rejected request reserves no index. Never below the run's highest step, nor at or
        below an explicitly finished one, so mixing with explicit steps counts every sample.
        """
        with self.store.write() as tx:
            record = tx.lock_run(run_id)
            if record is None:
                raise RunNotFound(run_id)
            config = RunConfig.model_validate_json(record.config_json)
            if config.samples_per_step is None:
                raise SampleError(
                    None, "samples_per_step", "the run has no samples_per_step to derive steps"
                )
            first = self._assign_locked(tx, record, len(samples))
            step = first // config.samples_per_step
            if record.max_step is not None:
                step = max(step, record.max_step)
            if record.finished_through is not None:
                step = max(step, record.finished_through + 1)
            return self._submit_locked(tx, record, step, samples)

    def _submit_locked(
        self, tx: Transaction, record: RunRecord, step: int, samples: Sequence[SampleInput]
    ) -> SubmitResult:
        """The body of ``submit`` inside a write transaction that holds the run's lock."""
        run_id = record.run_id
        config = RunConfig.model_validate_json(record.config_json)
        validate_samples(config, samples)
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

        results = self._score(tx, config, run_id, step, samples, state.k)
        stored = tx.get_samples(run_id, step, [s.id for s in samples if s.id is not None])
        answered: dict[str, SampleResult] = {}
        final: list[SampleResult] = []
        counted: list[tuple[SampleInput, SampleResult]] = []
        for sample, result in zip(samples, results, strict=True):
            if sample.id is not None and sample.id in stored:
                result = _result_from_json(stored[sample.id])
            elif sample.id is not None and sample.id in answered:
                result = SampleResult(**{**asdict(answered[sample.id]), "duplicate": True})
            else:
                counted.append((sample, result))
                # A late request counts nothing, so a repeated id in it is no retry.
                if sample.id is not None and not late:
                    answered[sample.id] = result
            final.append(result)

        if not late:
            self._count(tx, run_id, step, state, counted)
            record.max_step = step if record.max_step is None else max(record.max_step, step)
            tx.update_run(record)
        return SubmitResult(
            run_id=run_id,
            step=step,
            samples=final,
            schedule=ScheduleView(
                k=state.k, dynamic=state.dynamic, low_slope_count=state.low_slope_count, late=late
            ),
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
        for sample, result in counted:
            row.samples += 1
            row.score_sum += sample.score
            if sample.counts is not None:
                row.counted += 1
                row.significant_sum += sample.counts.significant
                row.insignificant_sum += sample.counts.insignificant
            if sample.correct:
                row.n_correct += 1
                row.lr_correct_sum += result.length_reward
            else:
                row.n_wrong += 1
                row.lr_wrong_sum += result.length_reward
            row.degenerate += int(result.degenerate_reference)
        tx.put_step(row)
        tx.put_samples(
            run_id,
            step,
            [(s.id, _result_json(r)) for s, r in counted if s.id is not None],
        )

    def _score(
        self,
        tx: Transaction,
        config: RunConfig,
        run_id: str,
        step: int,
        samples: Sequence[SampleInput],
        k: float,
    ) -> list[SampleResult]:
        if config.reward != "significance":
            return self._score_baseline(config, step, samples)
        references = self._references(tx, config, run_id, step, samples)
        params = SignificanceRewardParams(config.lambda_c, config.lambda_w_n, config.lambda_w_e)
        results = []
        for sample, reference in zip(samples, references, strict=True):
            assert sample.counts is not None  # validate_samples checked it
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
        means = _request_means(samples)
        if config.reference == "group":
            return [means[s.prompt_id] for s in samples]  # type: ignore[index]
        pinned = tx.get_references(run_id, list(means))
        new = {prompt_id: m for prompt_id, m in means.items() if prompt_id not in pinned}
        if new:
            tx.put_references(run_id, step, new)
            pinned.update(new)
        return [pinned[s.prompt_id] for s in samples]  # type: ignore[index]

    def _score_baseline(
        self, config: RunConfig, step: int, samples: Sequence[SampleInput]
    ) -> list[SampleResult]:
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
