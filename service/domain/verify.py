"""Outcome verification of labelled samples: does a response's answer match its label?

Samples may carry ``label`` instead of ``correct``; the run option ``verifier`` names the check
(``VERIFIERS``; "math" is the math-verify comparison used across the RL-for-reasoning field).

``verify`` never raises on bad text: unparsable, empty or garbage input (control characters,
U+FFFD) is simply not correct. math-verify bounds its sympy work with ``signal.alarm``, which
only works on a process's main thread, so calls from any other thread (a server's worker
threads) are sent to a small helper process that runs math-verify on its own main thread.
``LabelVerifier`` owns that process: it starts it on first use and ``close`` stops it (the
server's lifespan creates one verifier and closes it at shutdown).

The helper ignores SIGINT and SIGTERM: it shares the server's process group, so Ctrl-C,
``timeout`` or ``kill -- -PGID`` would otherwise kill it in the middle of a drain. The owner
stops it (SIGKILL) on close, and it exits by itself when the parent's end of its pipe closes.
A helper that dies or does not answer in time raises ``VerifierUnavailable`` (the server answers
a retryable 503 and stores nothing): a failure to verify is never turned into "wrong".
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import re
import signal
import threading
from collections.abc import Callable, Sequence
from multiprocessing import util as _multiprocessing_util  # noqa: F401 - see atexit below
from multiprocessing.connection import Connection
from typing import Any

from sigreward.bounds import MAX_LABEL_CHARS

logger = logging.getLogger(__name__)

# Answers sit at the end of a response; a bounded tail keeps regex and sympy work small.
MAX_RESPONSE_CHARS = 8192
# Per-call limits inside math-verify (seconds, whole numbers because of signal.alarm).
PARSE_TIMEOUT_S = 2
COMPARE_TIMEOUT_S = 2
# How long a caller off the main thread waits for the helper process: a start-up allowance
# (spawning imports math-verify) plus a per-pair allowance.
HELPER_BASE_TIMEOUT_S = 30.0
HELPER_TIMEOUT_PER_PAIR_S = 2 * (PARSE_TIMEOUT_S * 2 + COMPARE_TIMEOUT_S)

# C0/C1 control characters except tab and newline, and the replacement character U+FFFD.
_JUNK = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffd]")


def _clean(text: Any, limit: int, keep_tail: bool) -> str:
    if not isinstance(text, str):
        return ""
    text = _JUNK.sub("", text).strip()
    if len(text) > limit:
        text = text[-limit:] if keep_tail else text[:limit]
    return text


def _math_verify_here(label: str, response: str) -> bool:
    """math-verify on the current thread (its timeouts need the main thread)."""
    from math_verify import parse
    from math_verify import verify as mv_verify

    gold_text = _clean(label, MAX_LABEL_CHARS, keep_tail=False)
    answer_text = _clean(response, MAX_RESPONSE_CHARS, keep_tail=True)
    if not gold_text or not answer_text:
        return False
    try:
        # A bare label such as "x^2+1" or "\frac{1}{2}" parses reliably only inside \boxed{}.
        if "\\boxed" in gold_text or "$" in gold_text:
            gold = parse(gold_text, parsing_timeout=PARSE_TIMEOUT_S)
        else:
            gold = parse("\\boxed{" + gold_text + "}", parsing_timeout=PARSE_TIMEOUT_S)
            if not gold:
                gold = parse(gold_text, parsing_timeout=PARSE_TIMEOUT_S)
        if not gold:
            return False
        answer = parse(answer_text, parsing_timeout=PARSE_TIMEOUT_S)
        if not answer:
            return False
        return bool(mv_verify(gold, answer, timeout_seconds=COMPARE_TIMEOUT_S))
    except BaseException as err:  # noqa: BLE001 - sympy/antlr/timeouts: bad text is just wrong
        if isinstance(err, KeyboardInterrupt | SystemExit):
            raise
        return False


class VerifierUnavailable(RuntimeError):
    """The verifier helper process died or did not answer; nothing was verified (retryable)."""


def _helper_main(conn: Connection) -> None:
    """Helper process loop: receive lists of (check, label, response), answer lists of bools.

    ``check`` travels pickled by reference, so verifiers registered at run time work here too.
    """
    # Signals sent to the server's whole process group are the server's to handle (drain);
    # the parent kills this process explicitly, and EOF on the pipe ends the loop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        try:
            batch = conn.recv()
        except EOFError:
            return
        conn.send([_run_check(check, label, response) for check, label, response in batch])


class _Helper:
    """One helper process (spawned, so no locks or threads are inherited from the server)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        if self._process is not None and self._process.is_alive() and self._conn is not None:
            return self._conn
        self._stop()
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_helper_main, args=(child,), daemon=True, name="verifier")
        process.start()
        child.close()
        self._process, self._conn = process, parent
        # Runs before multiprocessing's own exit hook (registered earlier, at import), which
        # would otherwise SIGTERM the signal-ignoring daemon helper and wait for it forever.
        atexit.register(self.close)
        return parent

    def _stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
        if self._process is not None:
            atexit.unregister(self.close)
        self._process, self._conn = None, None

    def run(self, batch: list[tuple[Verifier, str, str]]) -> list[bool]:
        """The helper's answers; ``VerifierUnavailable`` when it dies or does not answer."""
        timeout = HELPER_BASE_TIMEOUT_S + HELPER_TIMEOUT_PER_PAIR_S * len(batch)
        with self._lock:
            try:
                conn = self._start()
                conn.send(batch)
                if conn.poll(timeout):
                    answer = conn.recv()
                    if isinstance(answer, list) and len(answer) == len(batch):
                        return [bool(a) for a in answer]
                    reason = "answered with a malformed reply"
                else:
                    reason = f"did not answer within {timeout:.0f} s"
            except (OSError, EOFError) as err:
                reason = f"failed ({type(err).__name__})"
            logger.warning("verifier helper %s; restarting it", reason)
            self._stop()
            raise VerifierUnavailable(f"the label verifier {reason}; nothing was verified")

    def close(self) -> None:
        with self._lock:
            self._stop()


Verifier = Callable[[str, str], bool]

# name -> check(label, response). Register new verifiers here (and in run_config.VerifierName).
VERIFIERS: dict[str, Verifier] = {"math": _math_verify_here}


def register_verifier(name: str, check: Verifier) -> None:
    """Add a verifier. ``check(label, response)`` must return a bool and may run in a helper
    process, so it has to be a module-level function (picklable by reference)."""
    VERIFIERS[name] = check


def _run_check(check: Verifier, label: str, response: str) -> bool:
    try:
        return bool(check(label, response))
    except Exception:  # noqa: BLE001 - a verifier must never fail a request
        return False


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class LabelVerifier:
    """Checks responses against labels; off the main thread through its own helper process,
    started on first use and stopped by ``close`` (a later call starts a fresh one)."""

    def __init__(self) -> None:
        self._helper = _Helper()

    def verify(self, label: str, response: str, verifier: str = "math") -> bool:
        """True when ``response``'s final answer matches ``label`` under ``verifier``.

        Raises ValueError for an unknown verifier name and ``VerifierUnavailable`` when the
        helper process fails; bad text gives False.
        """
        return self.verify_many([label], [response], verifier)[0]

    def verify_many(
        self, labels: Sequence[str], responses: Sequence[str], verifier: str = "math"
    ) -> list[bool]:
        """``verify`` for many pairs at once (one round trip to the helper off the main
        thread)."""
        check = VERIFIERS.get(verifier)
        if check is None:
            raise ValueError(f"unknown verifier {verifier!r}; known: {sorted(VERIFIERS)}")
        if len(labels) != len(responses):
            raise ValueError(f"{len(labels)} labels but {len(responses)} responses")
        if not labels:
            return []
        pairs = list(zip(labels, responses, strict=True))
        if _on_main_thread():
            return [_run_check(check, label, response) for label, response in pairs]
        return self._helper.run([(check, _as_text(lab), _as_text(res)) for lab, res in pairs])

    def close(self) -> None:
        """Stop the helper process."""
        self._helper.close()
