"""Seeded reasoning-style texts for the parity tests and benchmarks.

They look like the responses an RL trainer sends: math with operators and LaTeX, code, numbers
with separators, CJK, emoji, line breaks, and long stretches without a period (so chunks are
cut at the 511-token window instead of at a sentence end).
"""

from __future__ import annotations

import random

PIECES: tuple[str, ...] = (
    "Let x+1=3. Then x = 2, so the answer is \\boxed{2}.",
    "We need $\\frac{a}{b} + \\sqrt{x^2 + y^2} \\geq 2\\sqrt{xy}$ for all $x, y > 0$.",
    "Wait, let me check again: 17 + 25 = 42, and 42 * 3 = 126.",
    "Hmm, the total is 1,234,567.89 dollars, i.e. about 1.23e6 (or 10^{6.09}).",
    "def f(n):\n    return n * (n + 1) // 2  # sum of 1..n\n",
    "for i in range(10):\n    if i % 2 == 0:\n        print(i, i**2)\n",
    "所以答案是 42。我们再检查一遍：6 × 7 = 42。",
    "数学归纳法：当 n = 1 时成立，假设 n = k 时成立，",
    "Okay 🤔 so the derivative of $\\sin(x)\\cos(x)$ is $\\cos(2x)$ ✅.",
    "Step 3: substitute $u = 2t - 1$, so $du = 2\\,dt$ and the integral becomes $\\int_0^1 u^3\\,du$.",
    "Alternatively, one could argue it is 13; but (a) and (b) rule that out.\n",
    "The probability is P(A|B) = P(B|A)P(A)/P(B) = 0.3 * 0.5 / 0.25 = 0.6.",
    "Therefore: a_n = 2a_{n-1} + 3, a_0 = 1 => a_n = 2^{n+2} - 3.\n\n",
    "Unbelievably, tokenization splits words like über-complicated, naïve and café.",
    "So [x, y] = [3, -4] and ||v||_2 = 5; done!",
    "x = -b ± √(b² - 4ac) / 2a → x₁ = 2, x₂ = -1/3...",
)

# Clauses with no "." anywhere: stretches of these reach the 511-token window without a chunk end.
NO_PERIOD: tuple[str, ...] = (
    "then we add 3 and 4 to get 7",
    "and we carry the one into the next column",
    "so the sum of the tens is 1 1",
    "which we compare against the target value 417",
    "hmm wait let me think about this again",
    "the remainder is 5 and the quotient is 12",
    "因为 x 大于 0 所以 y 也大于 0",
    "now f(x) = x^2 - 2x + 1 = (x - 1)^2",
)


def reasoning_text(rng: random.Random, approx_chars: int, periods: bool = True) -> str:
    parts: list[str] = []
    size = 0
    pool = PIECES if periods else NO_PERIOD
    while size < approx_chars:
        piece = rng.choice(pool)
        if not periods:
            piece += rng.choice((", ", " ; ", " and ", "\n"))
        else:
            piece += rng.choice((" ", " ", "\n", "\n\n"))
        parts.append(piece)
        size += len(piece)
    return "".join(parts).strip()


def parity_texts(seed: int = 0) -> list[str]:
    """A fixed mix of 1 to about 3,000-token texts, short ones first."""
    rng = random.Random(seed)
    texts = ["42", "Hmm.", "Let x+1=3. Then x = 2, so the answer is \\boxed{2}.", "😀 好的 ✅"]
    for chars in (80, 200, 400, 900, 1600, 2600):
        texts.append(reasoning_text(rng, chars))
    for chars in (2200, 4000):  # long stretches without a period
        texts.append(reasoning_text(rng, chars, periods=False))
    texts.append(reasoning_text(rng, 6000) + " " + reasoning_text(rng, 3000, periods=False))
    texts.append(reasoning_text(rng, 11000))
    texts.append("\n".join(reasoning_text(rng, 60) for _ in range(60)))
    return texts
