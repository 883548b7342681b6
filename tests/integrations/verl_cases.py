"""The samples the verl driver scores (shared with test_verl.py; no verl imports here)."""

RESPONSES = [
    "so 2+2 is 4 \\boxed{4}",
    "hmm wait so \\boxed{5}",
    "so 3*3 is 9 \\boxed{9}",
    "wait wait hmm 3*3 is 6 so \\boxed{6}",
    "\\boxed{9}",
    "so \\boxed{4}",
]
PROMPTS = [
    "what is 2+2?",
    "what is 2+2?",
    "what is 3*3?",
    "what is 3*3?",
    "what is 3*3?",
    "what is 2+2?",
]
TRUTHS = ["4", "4", "9", "9", "9", "4"]
INDEX = [0, 0, 1, 1, 1, 0]  # verl's example datasets put the row index in extra_info
