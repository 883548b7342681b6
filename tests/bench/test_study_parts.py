"""The study's pieces: the toy task, reading responses, samples per variant, advantages, the
classifier's tokenizer as the engine sees it, and the report's seed-spread rule."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from bench.study.classifier import WORDS, build_tokenizer
from bench.study.grpo import group_advantages
from bench.study.policy import GPTConfig, TinyGPT, batch_ids, sample, token_logprobs
from bench.study.report import Spread, spread
from bench.study.task import (
    VOCAB,
    Problem,
    TraceStyle,
    column_steps,
    filler_mask,
    make_trace,
    parse_answer,
    quick_answer,
    random_problem,
    read_response,
)
from bench.study.variants import BY_NAME, build_samples, run_config_for

W = str.split  # "U 3 + 4" -> ["U", "3", "+", "4"]


def test_no_carry_share_is_the_issues_68_percent() -> None:
    digits = range(7)
    problems = [
        Problem(100 * a + 10 * b + c, 100 * d + 10 * e + f)
        for a, b, c, d, e, f in itertools.product(digits, repeat=6)
    ]
    no_carry = sum(not p.has_carry for p in problems) / len(problems)
    # Per column 43 of the 49 digit pairs sum below 10; the columns are independent.
    assert no_carry == pytest.approx((43 / 49) ** 3)
    assert 0.67 < no_carry < 0.68


def test_column_steps_of_the_issue_example() -> None:
    p = Problem(253, 164)
    assert column_steps(p) == [W("U 3 + 4 = 7 ;"), W("T 5 + 6 = 1 1 ;"), W("H 2 + 1 + 1 = 4 ;")]
    assert p.answer == 417 and p.has_carry
    assert quick_answer(p) == 317  # carry-less: wrong exactly because a column carries
    assert quick_answer(Problem(123, 456)) == 579 == Problem(123, 456).answer


def test_traces_mix_modes_and_their_filler_never_changes_the_answer() -> None:
    rng = random.Random(3)
    modes = []
    for _ in range(400):
        p = random_problem(rng)
        tokens, labels, mode = make_trace(p, rng, TraceStyle())
        modes.append(mode)
        reading = read_response(p, tokens)
        assert reading.mode == mode
        assert filler_mask(tokens) == labels
        assert reading.filler == labels.count(0)
        assert reading.correct == (mode == "full" or not p.has_carry)
        assert len(tokens) <= 72
    assert 0.3 < modes.count("quick") / len(modes) < 0.45


def test_restatement_filler_is_recognised_by_shape() -> None:
    tokens = W("so we have 2 5 3 + 1 6 4 ; U 3 + 4 = 7 ; hmm ; so we have 1 ;")
    assert filler_mask(tokens) == [0] * 11 + [1] * 7 + [0, 0] + [1] * 5


@pytest.mark.parametrize(
    ("text", "mode", "correct"),
    [
        ("> 4 1 7 E", "quick", True),
        ("hmm ; > 3 1 7 E", "quick", False),
        ("U 3 + 4 = 7 ; T 5 + 6 = 1 1 ; right ; H 2 + 1 + 1 = 4 ; > 4 1 7 E", "full", True),
        ("U 3 + 4 = 7 ; T 5 + 6 = 1 1 ; H 2 + 1 = 3 ; > 3 1 7 E", "full", False),
        ("U 3 + 4 = 7 ; > 4 1 7 E", "garbled", True),
        ("U 3 + 4 = 7 ; T 5", "garbled", False),
        ("> 4 1 7", "garbled", False),
    ],
)
def test_read_response(text: str, mode: str, correct: bool) -> None:
    reading = read_response(Problem(253, 164), W(text))
    assert (reading.mode, reading.correct) == (mode, correct)
    assert reading.length == len(W(text))


def test_parse_answer_needs_the_end_marker() -> None:
    assert parse_answer(W("> 0 8 3 E")) == 83
    assert parse_answer(W("> 0 8 3")) is None
    assert parse_answer(W("> E")) is None


def test_group_advantages_normalise_within_each_prompt() -> None:
    adv = group_advantages([1.0, 0.0, 1.0, 0.0, 5.0, 5.0, 5.0, 5.0], group=4)
    assert adv[:4].tolist() == pytest.approx([1.0, -1.0, 1.0, -1.0], abs=1e-5)
    assert adv[4:].tolist() == [0.0] * 4  # all-equal groups carry no signal


def test_samples_per_variant() -> None:
    resp, ref = W("hmm ; > 4 1 7 E"), W("U 3 + 4 = 7 ; wait let me check again ; > 4 E")
    args = (3, ["253+164"], [resp], [True], [ref], random.Random(0))
    oracle = build_samples(BY_NAME["sig_oracle"], *args)[0]
    assert oracle["significance"] == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert oracle["reference"] == {"significance": [1.0] * 7 + [0.0] * 6 + [1.0] * 3}
    assert oracle["id"] == "3-0" and oracle["prompt_id"] == "253+164" and oracle["num_tokens"] == 7
    rand = build_samples(BY_NAME["sig_random"], *args)[0]
    assert len(rand["significance"]) == 7 and len(rand["reference"]["significance"]) == 16
    assert rand["significance"] != oracle["significance"]
    text = build_samples(BY_NAME["sig_classifier"], *args)[0]
    assert text["response"] == "hmm ; > 4 1 7 E" and text["reference"] == {
        "response": " ".join(ref)
    }
    assert "significance" not in text
    linear = build_samples(BY_NAME["length"], *args)[0]
    assert linear["target_tokens"] == 0 and "reference" not in linear


def test_classifier_tokenizer_holds_every_task_word_whole() -> None:
    from sigreward.engine.tokenization import WORDPIECE, build_tables

    tok = build_tokenizer()
    ids = tok(" ".join(WORDS))["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["[CLS]", *WORDS, "[SEP]"]
    tables = build_tables(tok)
    assert tables.family == WORDPIECE
    assert all(tables.word_start[i] for i in ids[1:-1])  # one word per token, as the policy's


def test_cached_sampling_matches_the_full_forward() -> None:
    torch.manual_seed(0)
    model = TinyGPT(GPTConfig(d_model=32, layers=2, heads=2))
    problems = [Problem(253, 164), Problem(12, 605)]
    greedy = sample(model, problems, max_new=12, temperature=0.0)
    ids, mask = batch_ids(problems, greedy)
    logits, _ = model(ids[:, :-1])
    logits[..., [VOCAB.index("<pad>"), VOCAB.index("<bos>")]] = -float("inf")
    prompt = 1 + len(problems[0].prompt_tokens)
    for row, resp in enumerate(greedy):
        # Each greedy word is the argmax of the uncached forward at its position.
        argmax = logits[row, prompt - 1 : prompt - 1 + len(resp)].argmax(-1).tolist()
        assert [VOCAB[i] for i in argmax] == resp
        assert mask[row].sum() == len(resp)
    lp = token_logprobs(model, ids)
    assert lp.shape == mask.shape and bool((lp <= 0).all())


def test_spread_rule() -> None:
    a, b = spread([0.1, 0.2, 0.3]), spread([0.35, 0.5])
    assert a.disjoint(b) and b.disjoint(a)
    assert not a.disjoint(spread([0.3, 0.6]))  # touching ranges overlap
    assert not a.disjoint(spread([0.9]))  # one seed: no spread to judge
    assert Spread(0.2, 0.1, 0.3, 3).fmt("{:.1f}") == "0.2 [0.1, 0.3]"


def test_thinkprune_limits_tighten_in_rounds_the_last_for_two_thirds_of_the_run() -> None:
    config = run_config_for(BY_NAME["thinkprune"], 300)
    assert config["reward_params"]["schedule"] == [[0, 36.0], [50, 27.0], [100, 18.0]]
    # The variant's own table entry is not modified by building a run's configuration.
    assert BY_NAME["thinkprune"].run_config["reward_params"]["schedule"] == "rounds"
    assert run_config_for(BY_NAME["thinkprune"], 3)["reward_params"]["schedule"][1:] == [
        [1, 27.0],
        [2, 18.0],
    ]


def test_oracle_floor_asks_the_server_for_the_floor_and_sends_the_oracle_samples() -> None:
    clean = W("U 3 + 4 = 7 ; > 7 E")
    filled = W("hmm ; > 7 E")
    args = (0, ["a", "b"], [clean, clean], [True, True], [clean, filled], random.Random(0))
    floor = build_samples(BY_NAME["sig_oracle_floor"], *args)
    assert floor == build_samples(BY_NAME["sig_oracle"], *args)
    assert floor[1]["reference"] == {"significance": [0.0, 0.0, 1.0, 1.0, 1.0]}
    config = run_config_for(BY_NAME["sig_oracle_floor"], 10)
    assert config["degenerate_reference"] == "floor"
    assert "degenerate_reference" not in run_config_for(BY_NAME["sig_oracle"], 10)


def _spreads(acc: list[float], length: list[float]) -> dict[str, Spread]:
    return {"acc": spread(acc), "length": spread(length)}


@pytest.mark.parametrize(
    ("acc", "length", "verdict"),
    [
        ([0.95, 0.96], [20.0, 21.0], "supported"),
        ([0.80, 0.82], [20.0, 21.0], "contradicted: shorter, but accuracy is lower"),
        ([0.95, 0.96], [29.0, 31.0], "not shown"),
        ([0.95], [20.0], "cannot be judged from one seed"),
    ],
)
def test_paper_claim_verdicts(acc: list[float], length: list[float], verdict: str) -> None:
    from bench.study.report import _paper_claim

    spreads = {
        "outcome": _spreads([0.94, 0.97], [28.0, 31.0]),
        "sig_oracle": _spreads(acc, length),
    }
    assert verdict in _paper_claim(spreads, "sig_oracle")
