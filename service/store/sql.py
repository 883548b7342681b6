"""The schema and queries both SQL backends share (standard SQL: SQLite >= 3.24, PostgreSQL).

Statements are written with ``?`` placeholders; the PostgreSQL backend rewrites them to ``%s``.
JSON is kept as text so both backends store byte-identical documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sigreward.domain.results import Counts
from sigreward.store.base import FingerprintRecord, RunRecord, StepRecord, iter_chunks

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY,
        config TEXT NOT NULL,
        schedule TEXT NOT NULL,
        max_step BIGINT,
        finished_through BIGINT
    )""",
    """CREATE TABLE IF NOT EXISTS steps (
        run_id TEXT NOT NULL,
        step BIGINT NOT NULL,
        k_before DOUBLE PRECISION NOT NULL,
        dynamic_before INTEGER NOT NULL,
        low_before INTEGER NOT NULL,
        samples BIGINT NOT NULL,
        score_sum DOUBLE PRECISION NOT NULL,
        counted BIGINT NOT NULL,
        significant_sum DOUBLE PRECISION NOT NULL,
        insignificant_sum DOUBLE PRECISION NOT NULL,
        lr_correct_sum DOUBLE PRECISION NOT NULL,
        n_correct BIGINT NOT NULL,
        lr_wrong_sum DOUBLE PRECISION NOT NULL,
        n_wrong BIGINT NOT NULL,
        degenerate BIGINT NOT NULL,
        finished INTEGER NOT NULL,
        k_after DOUBLE PRECISION,
        state_after TEXT,
        PRIMARY KEY (run_id, step)
    )""",
    """CREATE TABLE IF NOT EXISTS samples (
        run_id TEXT NOT NULL,
        step BIGINT NOT NULL,
        sample_id TEXT NOT NULL,
        result TEXT NOT NULL,
        PRIMARY KEY (run_id, step, sample_id)
    )""",
    """CREATE TABLE IF NOT EXISTS prompt_references (
        run_id TEXT NOT NULL,
        prompt_id TEXT NOT NULL,
        significant DOUBLE PRECISION NOT NULL,
        insignificant DOUBLE PRECISION NOT NULL,
        first_seen_step BIGINT NOT NULL,
        PRIMARY KEY (run_id, prompt_id)
    )""",
    """CREATE TABLE IF NOT EXISTS counters (
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value BIGINT NOT NULL,
        PRIMARY KEY (run_id, name)
    )""",
    # Added after the first release: IF NOT EXISTS creates them in existing databases too.
    # Finds a retried request's samples by id whatever step they were counted in.
    "CREATE INDEX IF NOT EXISTS samples_by_id ON samples (run_id, sample_id)",
    # Recent requests without sample ids (OpenRLHF), to answer a resent one from its result.
    """CREATE TABLE IF NOT EXISTS request_fingerprints (
        run_id TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        step BIGINT NOT NULL,
        result TEXT NOT NULL,
        seen_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (run_id, fingerprint)
    )""",
    "CREATE INDEX IF NOT EXISTS request_fingerprints_age ON request_fingerprints (run_id, seen_at)",
    # Samples counted per prompt in the step it was last counted in (run option
    # samples_per_prompt): a prompt whose group is full marks a resent request.
    """CREATE TABLE IF NOT EXISTS prompt_groups (
        run_id TEXT NOT NULL,
        prompt_id TEXT NOT NULL,
        step BIGINT NOT NULL,
        samples BIGINT NOT NULL,
        PRIMARY KEY (run_id, prompt_id)
    )""",
]

_STEP_COLUMNS = (
    "run_id, step, k_before, dynamic_before, low_before, samples, score_sum, counted, "
    "significant_sum, insignificant_sum, lr_correct_sum, n_correct, lr_wrong_sum, n_wrong, "
    "degenerate, finished, k_after, state_after"
)
_RUN_COLUMNS = "run_id, config, schedule, max_step, finished_through"


def _run(row: Sequence[Any] | None) -> RunRecord | None:
    if row is None:
        return None
    return RunRecord(row[0], row[1], row[2], row[3], row[4])


def _step(row: Sequence[Any]) -> StepRecord:
    return StepRecord(
        run_id=row[0],
        step=int(row[1]),
        k_before=float(row[2]),
        dynamic_before=bool(row[3]),
        low_before=int(row[4]),
        samples=int(row[5]),
        score_sum=float(row[6]),
        counted=int(row[7]),
        significant_sum=float(row[8]),
        insignificant_sum=float(row[9]),
        lr_correct_sum=float(row[10]),
        n_correct=int(row[11]),
        lr_wrong_sum=float(row[12]),
        n_wrong=int(row[13]),
        degenerate=int(row[14]),
        finished=bool(row[15]),
        k_after=None if row[16] is None else float(row[16]),
        state_after_json=row[17],
    )


class SqlTransaction:
    """``Transaction`` over a DB-API connection already inside a transaction."""

    placeholder = "?"
    lock_clause = ""  # " FOR UPDATE" where the backend has row locks

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.placeholder != "?":
            sql = sql.replace("?", self.placeholder)
        return self._connection.execute(sql, tuple(params))

    def _exec_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.placeholder != "?":
            sql = sql.replace("?", self.placeholder)
        self._connection.cursor().executemany(sql, [tuple(row) for row in rows])

    # runs ---------------------------------------------------------------------------------
    def ensure_run(self, record: RunRecord) -> tuple[RunRecord, bool]:
        cursor = self._exec(
            f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id) DO NOTHING",
            (
                record.run_id,
                record.config_json,
                record.schedule_json,
                record.max_step,
                record.finished_through,
            ),
        )
        created = cursor.rowcount == 1
        stored = self.lock_run(record.run_id)
        if stored is None:  # deleted between the insert and the lock by another replica
            return self.ensure_run(record)
        return stored, created

    def lock_run(self, run_id: str) -> RunRecord | None:
        row = self._exec(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?{self.lock_clause}", (run_id,)
        ).fetchone()
        return _run(row)

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self._exec(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _run(row)

    def update_run(self, record: RunRecord) -> None:
        self._exec(
            "UPDATE runs SET config = ?, schedule = ?, max_step = ?, finished_through = ? "
            "WHERE run_id = ?",
            (
                record.config_json,
                record.schedule_json,
                record.max_step,
                record.finished_through,
                record.run_id,
            ),
        )

    def delete_run(self, run_id: str) -> bool:
        if self.lock_run(run_id) is None:
            return False
        for table in (
            "samples",
            "prompt_references",
            "steps",
            "counters",
            "request_fingerprints",
            "prompt_groups",
            "runs",
        ):
            self._exec(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
        return True

    def list_runs(self) -> list[str]:
        return [row[0] for row in self._exec("SELECT run_id FROM runs ORDER BY run_id").fetchall()]

    def add_to_counter(self, run_id: str, name: str, n: int) -> int:
        # Read, then upsert: the caller holds the run's lock (BEGIN IMMEDIATE / FOR UPDATE),
        # so no other transaction moves the counter in between.
        row = self._exec(
            "SELECT value FROM counters WHERE run_id = ? AND name = ?", (run_id, name)
        ).fetchone()
        previous = 0 if row is None else int(row[0])
        self._exec(
            "INSERT INTO counters (run_id, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT (run_id, name) DO UPDATE SET value = excluded.value",
            (run_id, name, previous + n),
        )
        return previous

    def get_counter(self, run_id: str, name: str) -> int:
        row = self._exec(
            "SELECT value FROM counters WHERE run_id = ? AND name = ?", (run_id, name)
        ).fetchone()
        return 0 if row is None else int(row[0])

    # steps --------------------------------------------------------------------------------
    def get_step(self, run_id: str, step: int) -> StepRecord | None:
        row = self._exec(
            f"SELECT {_STEP_COLUMNS} FROM steps WHERE run_id = ? AND step = ?", (run_id, step)
        ).fetchone()
        return None if row is None else _step(row)

    def put_step(self, r: StepRecord) -> None:
        values = (
            r.run_id,
            r.step,
            r.k_before,
            int(r.dynamic_before),
            r.low_before,
            r.samples,
            r.score_sum,
            r.counted,
            r.significant_sum,
            r.insignificant_sum,
            r.lr_correct_sum,
            r.n_correct,
            r.lr_wrong_sum,
            r.n_wrong,
            r.degenerate,
            int(r.finished),
            r.k_after,
            r.state_after_json,
        )
        updates = ", ".join(
            f"{c} = excluded.{c}" for c in _STEP_COLUMNS.split(", ") if c not in ("run_id", "step")
        )
        self._exec(
            f"INSERT INTO steps ({_STEP_COLUMNS}) VALUES ({', '.join('?' * len(values))}) "
            f"ON CONFLICT (run_id, step) DO UPDATE SET {updates}",
            values,
        )

    def unfinished_steps(self, run_id: str, through: int) -> list[StepRecord]:
        rows = self._exec(
            f"SELECT {_STEP_COLUMNS} FROM steps WHERE run_id = ? AND finished = 0 AND step <= ? "
            "ORDER BY step",
            (run_id, through),
        ).fetchall()
        return [_step(row) for row in rows]

    def finished_steps(self, run_id: str) -> list[StepRecord]:
        rows = self._exec(
            f"SELECT {_STEP_COLUMNS} FROM steps WHERE run_id = ? AND finished = 1 ORDER BY step",
            (run_id,),
        ).fetchall()
        return [_step(row) for row in rows]

    def last_finished_before(self, run_id: str, step: int) -> StepRecord | None:
        row = self._exec(
            f"SELECT {_STEP_COLUMNS} FROM steps WHERE run_id = ? AND finished = 1 AND step < ? "
            "ORDER BY step DESC LIMIT 1",
            (run_id, step),
        ).fetchone()
        return None if row is None else _step(row)

    # samples and references ---------------------------------------------------------------
    def get_samples(self, run_id: str, step: int, sample_ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in iter_chunks(list(dict.fromkeys(sample_ids))):
            marks = ", ".join("?" * len(chunk))
            rows = self._exec(
                "SELECT sample_id, result FROM samples WHERE run_id = ? AND step = ? "
                f"AND sample_id IN ({marks})",
                (run_id, step, *chunk),
            ).fetchall()
            found.update({row[0]: row[1] for row in rows})
        return found

    def put_samples(self, run_id: str, step: int, results: Sequence[tuple[str, str]]) -> None:
        self._exec_many(
            "INSERT INTO samples (run_id, step, sample_id, result) VALUES (?, ?, ?, ?)",
            [(run_id, step, sample_id, result) for sample_id, result in results],
        )

    def sample_steps(self, run_id: str, sample_ids: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for chunk in iter_chunks(list(dict.fromkeys(sample_ids))):
            marks = ", ".join("?" * len(chunk))
            rows = self._exec(
                f"SELECT sample_id, step FROM samples WHERE run_id = ? AND sample_id IN ({marks})",
                (run_id, *chunk),
            ).fetchall()
            for sample_id, step in rows:
                found[sample_id] = min(int(step), found.get(sample_id, int(step)))
        return found

    def get_fingerprint(self, run_id: str, fingerprint: str) -> FingerprintRecord | None:
        row = self._exec(
            "SELECT step, result, seen_at FROM request_fingerprints "
            "WHERE run_id = ? AND fingerprint = ?",
            (run_id, fingerprint),
        ).fetchone()
        if row is None:
            return None
        return FingerprintRecord(int(row[0]), row[1], float(row[2]))

    def put_fingerprint(
        self, run_id: str, fingerprint: str, record: FingerprintRecord, prune_before: float
    ) -> None:
        self._exec(
            "DELETE FROM request_fingerprints WHERE run_id = ? AND seen_at < ?",
            (run_id, prune_before),
        )
        self._exec(
            "INSERT INTO request_fingerprints (run_id, fingerprint, step, result, seen_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, fingerprint) DO UPDATE SET "
            "step = excluded.step, result = excluded.result, seen_at = excluded.seen_at",
            (run_id, fingerprint, record.step, record.result_json, record.seen_at),
        )

    def get_prompt_groups(
        self, run_id: str, prompt_ids: Sequence[str]
    ) -> dict[str, tuple[int, int]]:
        rows = self._rows_of_prompts("step, samples FROM prompt_groups", run_id, prompt_ids)
        return {row[0]: (int(row[1]), int(row[2])) for row in rows}

    def put_prompt_groups(self, run_id: str, groups: dict[str, tuple[int, int]]) -> None:
        self._exec_many(
            "INSERT INTO prompt_groups (run_id, prompt_id, step, samples) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (run_id, prompt_id) DO UPDATE SET step = excluded.step, "
            "samples = excluded.samples",
            [(run_id, prompt_id, step, n) for prompt_id, (step, n) in groups.items()],
        )

    def get_references(self, run_id: str, prompt_ids: Sequence[str]) -> dict[str, Counts]:
        rows = self._rows_of_prompts(
            "significant, insignificant FROM prompt_references", run_id, prompt_ids
        )
        return {row[0]: Counts(float(row[1]), float(row[2])) for row in rows}

    def _rows_of_prompts(
        self, columns_from: str, run_id: str, prompt_ids: Sequence[str]
    ) -> list[Any]:
        """``SELECT prompt_id, <columns_from> WHERE`` the run's rows of these prompts, queried in
        chunks (databases cap the parameters of one statement)."""
        rows: list[Any] = []
        for chunk in iter_chunks(list(dict.fromkeys(prompt_ids))):
            marks = ", ".join("?" * len(chunk))
            rows += self._exec(
                f"SELECT prompt_id, {columns_from} WHERE run_id = ? AND prompt_id IN ({marks})",
                (run_id, *chunk),
            ).fetchall()
        return rows

    def put_references(self, run_id: str, step: int, references: dict[str, Counts]) -> None:
        self._exec_many(
            "INSERT INTO prompt_references "
            "(run_id, prompt_id, significant, insignificant, first_seen_step) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, prompt_id) DO NOTHING",
            [
                (run_id, prompt_id, counts.significant, counts.insignificant, step)
                for prompt_id, counts in references.items()
            ],
        )
