"""The toy task: 3-digit addition with a tempting shortcut.

Operand digits are 0-6, so about 68% of problems have no carry at all. A response is a list of
word tokens in one of two modes:

- *full*: one column step per digit (`U 3 + 4 = 7 ;`, `T 5 + 6 = 1 1 ;`,
  `H 2 + 1 + 1 = 4 ;`, the `+ 1` being the carry in), then `> 4 1 7 E`; neutral filler phrases
  sit at random between the steps and never change the answer;
- *quick*: `> c E` at once, c being the carry-less digit-wise sum: right exactly when nothing
  carries.

Everything here is pure and seeded by the caller's `random.Random`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

PAD, BOS = "<pad>", "<bos>"
DIGITS = tuple(str(d) for d in range(10))
COLUMN_NAMES = ("U", "T", "H")
FILLER_PHRASES: tuple[tuple[str, ...], ...] = (
    ("hmm", ";"),
    ("wait", "let", "me", "check", "again", ";"),
    ("ok", "let", "me", "think", ";"),
    ("right", ";"),
)
# The restatement filler copies the problem: "so we have 3 5 2 + 4 6 1 ;".
RESTATE_HEAD = ("so", "we", "have")
_WORDS = sorted({w for phrase in FILLER_PHRASES for w in phrase} | set(RESTATE_HEAD))
VOCAB: tuple[str, ...] = (
    PAD,
    BOS,
    *DIGITS,
    "+",
    "=",
    ">",
    "E",
    *COLUMN_NAMES,
    *[w for w in _WORDS if w not in {";"}],
    ";",
)
TOKEN_ID = {tok: i for i, tok in enumerate(VOCAB)}
MAX_DIGIT = 6


@dataclass(frozen=True)
class Problem:
    a: int
    b: int

    @property
    def answer(self) -> int:
        return self.a + self.b

    def digits(self, n: int) -> tuple[int, int, int]:
        """Hundreds, tens, units of n (n < 1000)."""
        return n // 100, n // 10 % 10, n % 10

    @property
    def has_carry(self) -> bool:
        return any(
            x + y >= 10 for x, y in zip(self.digits(self.a), self.digits(self.b), strict=True)
        )

    @property
    def prompt_tokens(self) -> list[str]:
        return [*_digit_words(self.a, 3), "+", *_digit_words(self.b, 3), "="]

    @property
    def key(self) -> str:
        return f"{self.a:03d}+{self.b:03d}"


def _digit_words(n: int, width: int) -> list[str]:
    return list(f"{n:0{width}d}")


def answer_words(n: int) -> list[str]:
    """Answers are written with at least three digits (052 + 031 = 0 8 3)."""
    return _digit_words(n, 3)


def random_problem(rng: random.Random) -> Problem:
    def operand() -> int:
        return int("".join(str(rng.randint(0, MAX_DIGIT)) for _ in range(3)))

    return Problem(operand(), operand())


def column_steps(problem: Problem) -> list[list[str]]:
    """The three column steps of the full mode, units first."""
    da, db = problem.digits(problem.a)[::-1], problem.digits(problem.b)[::-1]
    steps, carry = [], 0
    for name, x, y in zip(COLUMN_NAMES, da, db, strict=True):
        total = x + y + carry
        step = [name, str(x), "+", str(y)]
        if carry:
            step += ["+", "1"]
        step += ["=", *list(str(total)), ";"]
        steps.append(step)
        carry = total // 10
    return steps


def quick_answer(problem: Problem) -> int:
    """The carry-less digit-wise sum: the shortcut's answer."""
    da, db = problem.digits(problem.a), problem.digits(problem.b)
    return int("".join(str((x + y) % 10) for x, y in zip(da, db, strict=True)))


def filler_phrase(problem: Problem, rng: random.Random) -> list[str]:
    choice = rng.randrange(len(FILLER_PHRASES) + 1)
    if choice == len(FILLER_PHRASES):
        return [*RESTATE_HEAD, *problem.prompt_tokens[:-1], ";"]
    return list(FILLER_PHRASES[choice])


@dataclass(frozen=True)
class TraceStyle:
    """How SFT traces are drawn: share of quick answers and filler per gap between steps."""

    quick_share: float = 0.38
    filler_one: float = 0.3  # chance of a filler phrase in a gap
    filler_two: float = 0.1  # chance of a second one in the same gap
    max_filler: int = 3  # phrases per trace, so every trace fits the policy's context


def make_trace(
    problem: Problem, rng: random.Random, style: TraceStyle
) -> tuple[list[str], list[int], str]:
    """(response tokens, keep labels, mode): 1 = needed for the answer, 0 = filler."""
    if rng.random() < style.quick_share:
        tokens = [">", *answer_words(quick_answer(problem)), "E"]
        return tokens, [1] * len(tokens), "quick"
    tokens: list[str] = []
    labels: list[int] = []
    final = [">", *answer_words(problem.answer), "E"]
    phrases = 0
    for step in [*column_steps(problem), final]:
        for chance in (style.filler_one, style.filler_two):
            if rng.random() < chance and phrases < style.max_filler:
                phrases += 1
                phrase = filler_phrase(problem, rng)
                tokens += phrase
                labels += [0] * len(phrase)
        tokens += step
        labels += [1] * len(step)
    return tokens, labels, "full"


# ---- reading responses ----------------------------------------------------------------------


def filler_mask(tokens: list[str]) -> list[int]:
    """Per token: 0 if it belongs to a filler phrase, else 1 (the true keep labels).

    Matches the fixed phrases literally and the restatement by shape
    (`so we have d d d + d d d ;`), left to right.
    """
    keep = [1] * len(tokens)
    i = 0
    while i < len(tokens):
        n = _filler_at(tokens, i)
        if n:
            keep[i : i + n] = [0] * n
            i += n
        else:
            i += 1
    return keep


def _filler_at(tokens: list[str], i: int) -> int:
    for phrase in FILLER_PHRASES:
        if tuple(tokens[i : i + len(phrase)]) == phrase:
            return len(phrase)
    head = len(RESTATE_HEAD)
    if tuple(tokens[i : i + head]) == RESTATE_HEAD:
        body = tokens[i + head : i + head + 8]
        if (
            len(body) == 8
            and all(t in DIGITS for t in body[:3] + body[4:7])
            and body[3] == "+"
            and body[7] == ";"
        ):
            return head + 8
    return 0


@dataclass(frozen=True)
class Reading:
    """What a response is, once filler is removed."""

    correct: bool
    mode: str  # "quick", "full" or "garbled"
    length: int  # policy tokens, "E" included
    filler: int  # tokens inside filler phrases
    finished: bool  # ended with "E"


def parse_answer(tokens: list[str]) -> int | None:
    """The number after the last ">" of a response that ends with "E", else None."""
    if not tokens or tokens[-1] != "E" or ">" not in tokens:
        return None
    last = len(tokens) - 1 - tokens[::-1].index(">")
    digits = tokens[last + 1 : -1]
    if not digits or len(digits) > 4 or not all(t in DIGITS for t in digits):
        return None
    return int("".join(digits))


def _is_answer(tokens: list[str]) -> bool:
    return (
        len(tokens) in (5, 6)
        and tokens[0] == ">"
        and tokens[-1] == "E"
        and all(t in DIGITS for t in tokens[1:-1])
    )


def _is_column_trace(tokens: list[str]) -> bool:
    """Three well-formed column steps U, T, H (any arithmetic) then an answer."""
    i = 0
    for name in COLUMN_NAMES:
        if i >= len(tokens) or tokens[i] != name or ";" not in tokens[i:]:
            return False
        end = tokens.index(";", i)
        body = tokens[i + 1 : end]
        if not _is_column_body(body):
            return False
        i = end + 1
    return _is_answer(tokens[i:])


def _is_column_body(body: list[str]) -> bool:
    # "x + y = s" or "x + y + 1 = s", s one or two digits
    if "=" not in body:
        return False
    eq = body.index("=")
    left, right = body[:eq], body[eq + 1 :]
    ok_left = (len(left) == 3 and left[1] == "+") or (
        len(left) == 5 and left[1] == "+" and left[3] == "+" and left[4] == "1"
    )
    return (
        ok_left
        and all(t in DIGITS for t in left[::2])
        and 1 <= len(right) <= 2
        and all(t in DIGITS for t in right)
    )


def read_response(problem: Problem, tokens: list[str]) -> Reading:
    keep = filler_mask(tokens)
    core = [t for t, k in zip(tokens, keep, strict=True) if k]
    if _is_answer(core):
        mode = "quick"
    elif _is_column_trace(core):
        mode = "full"
    else:
        mode = "garbled"
    answer = parse_answer(tokens)
    return Reading(
        correct=answer is not None and answer == problem.answer,
        mode=mode,
        length=len(tokens),
        filler=len(tokens) - sum(keep),
        finished=bool(tokens) and tokens[-1] == "E",
    )
