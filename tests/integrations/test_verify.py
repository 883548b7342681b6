"""sigreward.domain.verify: math-verify outcome checks, on and off the main thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from sigreward.domain import verify as verify_mod
from sigreward.domain.verify import VERIFIERS, LabelVerifier, register_verifier


@pytest.fixture(scope="module")
def label_verifier() -> Iterator[LabelVerifier]:
    owner = LabelVerifier()
    yield owner
    owner.close()


@pytest.mark.parametrize(
    ("label", "response", "expected"),
    [
        ("42", "\\boxed{42}", True),
        ("\\boxed{42}", "42", True),
        ("42", "so the answer is \\boxed{41}", False),
        ("\\boxed{41}", "The answer is 42.", False),
        ("\\frac{1}{2}", "We get \\boxed{0.5}", True),
        ("1/2", "Hence $\\frac12$.", True),
        ("\\frac{1}{3}", "\\boxed{0.5}", False),
        ("x^2+1", "\\boxed{1+x^2}", True),
        ("42", "4\ufffd2 \\boxed{4\x002}", True),  # junk characters are dropped before parsing
        ("42", "\x00\x01\ufffd\ufffd", False),
        ("42", "", False),
        ("", "\\boxed{42}", False),
        ("42", "\\boxed{", False),
        ("\\frac{", "\\boxed{42}", False),
        ("}}}{{{", "$$$\\\\\\", False),
    ],
)
def test_math_verify(
    label: str, response: str, expected: bool, label_verifier: LabelVerifier
) -> None:
    assert label_verifier.verify(label, response) is expected


def test_non_text_input_is_wrong_not_an_error(label_verifier: LabelVerifier) -> None:
    assert label_verifier.verify(None, "\\boxed{42}") is False  # type: ignore[arg-type]
    assert label_verifier.verify("42", 42) is False  # type: ignore[arg-type]


def test_long_response_uses_its_tail(label_verifier: LabelVerifier) -> None:
    response = "blah " * 50_000 + "final: \\boxed{7}"
    label_verifier.verify(
        "7", "\\boxed{7}"
    )  # math-verify's first call imports sympy: not what is timed
    started = time.monotonic()
    assert label_verifier.verify("7", response) is True
    assert time.monotonic() - started < 10


def test_unknown_verifier_is_a_value_error(label_verifier: LabelVerifier) -> None:
    with pytest.raises(ValueError, match="unknown verifier 'nope'"):
        label_verifier.verify("1", "1", verifier="nope")


def test_verify_many_keeps_order_and_checks_lengths(label_verifier: LabelVerifier) -> None:
    assert label_verifier.verify_many(["1", "2", "3"], ["\\boxed{1}", "\\boxed{3}", "3"]) == [
        True,
        False,
        True,
    ]
    with pytest.raises(ValueError, match="2 labels but 1 responses"):
        label_verifier.verify_many(["1", "2"], ["1"])


def _run_in_thread(fn):  # type: ignore[no-untyped-def]
    out: dict[str, object] = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as err:  # surfaced below
            out["error"] = err

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out["value"]


def test_off_main_thread_uses_the_helper_process(label_verifier: LabelVerifier) -> None:
    # math-verify's signal-based timeouts fail off the main thread; the helper must give the
    # same answers as the main thread does.
    labels = ["42", "42", "\\frac{1}{2}", "42"]
    responses = ["\\boxed{42}", "\\boxed{41}", "\\boxed{0.5}", "\ufffd\x00"]
    assert _run_in_thread(lambda: label_verifier.verify_many(labels, responses)) == [
        True,
        False,
        True,
        False,
    ]
    assert _run_in_thread(lambda: label_verifier.verify("\\boxed{42}", "42")) is True
    label_verifier.close()


def hang_forever(label: str, response: str) -> bool:
    time.sleep(3600)
    return True


def exact_match(label: str, response: str) -> bool:
    return label.strip() == response.strip()


def test_registry_and_a_stuck_helper_is_replaced(
    monkeypatch: pytest.MonkeyPatch, label_verifier: LabelVerifier
) -> None:
    monkeypatch.setitem(VERIFIERS, "exact", exact_match)
    monkeypatch.setitem(VERIFIERS, "hang", hang_forever)
    assert label_verifier.verify("abc", " abc ", verifier="exact") is True
    assert _run_in_thread(lambda: label_verifier.verify("abc", "abd", verifier="exact")) is False
    assert _run_in_thread(lambda: label_verifier.verify("abc", "abc", verifier="exact")) is True

    monkeypatch.setattr(verify_mod, "HELPER_BASE_TIMEOUT_S", 3.0)
    monkeypatch.setattr(verify_mod, "HELPER_TIMEOUT_PER_PAIR_S", 0.0)
    started = time.monotonic()
    # A helper that does not answer raises (the server answers 503): never "wrong".
    with pytest.raises(verify_mod.VerifierUnavailable, match="did not answer"):
        _run_in_thread(lambda: label_verifier.verify("a", "a", verifier="hang"))
    assert time.monotonic() - started < 30
    # The stuck helper was killed; a fresh one answers the next call.
    monkeypatch.setattr(verify_mod, "HELPER_BASE_TIMEOUT_S", 60.0)
    assert _run_in_thread(lambda: label_verifier.verify("42", "\\boxed{42}")) is True
    label_verifier.close()


def test_register_verifier_adds_a_name(
    monkeypatch: pytest.MonkeyPatch, label_verifier: LabelVerifier
) -> None:
    monkeypatch.setattr(verify_mod, "VERIFIERS", dict(VERIFIERS))
    register_verifier("exact", exact_match)
    assert label_verifier.verify("x", "x", verifier="exact") is True
