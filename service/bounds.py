"""Bounds on the numbers a request or a run option may carry.

Every accepted number enters sums, means, a least-squares slope and the reward formula; the
bounds keep all of them finite for any sequence of accepted requests (2^62 steps of 2^63
samples included), so no request can make a later one fail. They sit far above any value a
trainer sends: rewards are single digits, token counts below a billion.
"""

from __future__ import annotations

# |score| of a sample: sums over 2^63 samples stay below 1e29.
MAX_ABS_SCORE = 1e9
# Unit counts of a given reference, and token counts of a sample.
MAX_COUNT = 1e9
MAX_TOKENS = 1_000_000_000
# lambda_c, lambda_w_n, lambda_w_e: the starting k is lambda_w_e / (pi/2).
MAX_LAMBDA = 1e6
# |slope_threshold|, k_max and |reward_params| values.
MAX_OPTION = 1e9
# r_S (and r_I) of the wrong-answer term are capped here: a response a million times the
# reference's size already earns the floor of any sane reward, and k * r_S stays finite
# against a vanishing reference (counts like 1e-300).
MAX_RATIO = 1e6
# How far past the highest step a run has seen (or step 0 for a new run) a request or a finish
# may name, unless the run sets max_step_jump.
DEFAULT_MAX_STEP_JUMP = 1_000_000
MAX_STEP = 2**62
# The verifier compares at most this many characters of a label; longer labels are refused
# (a cut label would record a wrong outcome).
MAX_LABEL_CHARS = 1024
