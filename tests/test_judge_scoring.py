"""The judge's parsing and weighting math, with exact expected values (no server)."""

import math

import pytest

from traitloop.judge._scoring import (
    WordScores,
    digit_tree_numbers,
    merged,
    number_of,
    parse_reply,
    sampled_score,
    score_from_numbers,
    weighted_score,
    word_numbers,
)


def logs(probabilities: dict[str, float]) -> dict[str, float]:
    return {token: math.log(p) for token, p in probabilities.items()}


def test_number_of_accepts_only_whole_numbers_on_the_scale():
    assert [number_of(t) for t in ("75", " 75", "0", "100", "\n7")] == [75, 75, 0, 100, 7]
    assert [number_of(t) for t in ("101", "7.5", "REF", "", "-5", "٣")] == [None] * 6


def test_weighted_score_is_the_mean_over_number_tokens():
    score = weighted_score(logs({"75": 0.5, "80": 0.3, "REF": 0.1, " 75": 0.05}))
    # numbers {75: 0.55, 80: 0.3}, mass 0.85: (75 * 0.55 + 80 * 0.3) / 0.85 = 76.7647
    assert score.score == 76.76
    assert score.number_mass == pytest.approx(0.85)
    assert score.reason is None


def test_weighted_score_refuses_when_under_a_quarter_of_the_mass_is_on_numbers():
    score = weighted_score(logs({"REF": 0.76, "50": 0.24}))
    assert score.score is None
    assert score.number_mass == pytest.approx(0.24)
    assert score.reason == "only 0.24 of the probability is on numbers (most likely reply: 'REF')"
    assert weighted_score(logs({"REF": 0.75, "40": 0.25})).score == 40.0  # exactly a quarter is enough


def test_digit_tree_tells_75_from_7():
    first = logs({"7": 0.6, "8": 0.2, "1": 0.1, "I": 0.1})
    after = {
        "7": logs({"5": 0.5, "0": 0.3, "<|im_end|>": 0.2}),
        "8": logs({"0": 1.0}),
        "1": logs({"0": 0.5, "<|im_end|>": 0.5}),
        "10": logs({"0": 0.8, "<|im_end|>": 0.2}),
    }
    asked = []

    def next_after(prefix):
        asked.append(prefix)
        return after[prefix]

    numbers = digit_tree_numbers(first, next_after)
    assert asked == ["7", "8", "1", "10"]
    expected = {75: 0.3, 70: 0.18, 7: 0.12, 80: 0.2, 1: 0.05, 100: 0.04, 10: 0.01}
    assert numbers == pytest.approx(expected)
    # (75*.3 + 70*.18 + 7*.12 + 80*.2 + 1*.05 + 100*.04 + 10*.01) / 0.9 = 56.09 / 0.9
    assert score_from_numbers(numbers, first).score == 62.32
    assert weighted_score(first).score == 6.56  # (7*.6 + 8*.2 + 1*.1) / .9: reading digits as answers is wrong


def test_digit_tree_leaves_unlikely_prefixes_and_off_scale_numbers_out():
    asked = []

    def next_after(prefix):
        asked.append(prefix)
        return {"1": logs({"5": 0.5, "0": 0.5}), "10": logs({"1": 0.6, ".": 0.4})}[prefix]

    numbers = digit_tree_numbers(logs({"3": 0.005, "1": 0.9, " 0": 0.05}), next_after)
    assert asked == ["1", "10"]  # "3" is under 1% and not extended; "0" and "15" are complete
    assert numbers == pytest.approx({15: 0.45, 10: 0.18, 0: 0.05})  # "101" is off the scale: its mass is dropped


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("75", (75.0, None)),
        (" 42.5 \n", (42.5, None)),
        ("80/100", (80.0, None)),
        ("90.", (90.0, None)),
        ("REFUSAL", (None, "REFUSAL")),
        ("code", (None, "CODE")),
        ("I think 75", (None, "not a number: 'I think 75'")),
        ("150", (None, "not a number: '150'")),
    ],
)
def test_parse_reply_never_guesses(reply, expected):
    assert parse_reply(reply) == expected


def test_sampled_score_averages_the_numbers_when_a_quarter_parse():
    score = sampled_score(["70", "80", "garbage", "REFUSAL"])
    assert (score.score, score.number_mass) == (75.0, 0.5)
    assert sampled_score(["x", "y", "z", "10"]).score == 10.0
    none = sampled_score(["x", "y", "z", "w", "10"])
    assert none.score is None
    assert none.reason == "1 of 5 replies were numbers: [\"not a number: 'w'\", \"not a number: 'x'\", " + (
        "\"not a number: 'y'\", \"not a number: 'z'\"]"
    )


def test_refusal_and_code_replies_stay_unscored_unless_mapped():
    top = logs({"REF": 0.7, "80": 0.2, "I": 0.1})
    assert weighted_score(top).score is None  # 0.2 on numbers, the rest is REFUSAL and other words
    mapped = weighted_score(top, WordScores(refusal=0.0))
    # numbers {0: 0.7, 80: 0.2}, mass 0.9: 80 * 0.2 / 0.9 = 17.78
    assert (mapped.score, mapped.number_mass) == (17.78, pytest.approx(0.9))
    code = weighted_score(logs({" CODE": 0.5, "CO": 0.2, "C": 0.1, "40": 0.2}), WordScores(code=100.0))
    # "C" is too short to tell CODE from any other word: {100: 0.7, 40: 0.2}, (70 + 8) / 0.9 = 86.67
    assert (code.score, code.number_mass) == (86.67, pytest.approx(0.9))
    assert weighted_score(logs({"REF": 0.6, "80": 0.4}), WordScores(code=0.0)).score == 80.0  # only CODE mapped


def test_mapped_words_join_the_digit_tree_and_the_samples():
    first = logs({"REFUSAL": 0.5, "7": 0.5})
    numbers = merged(digit_tree_numbers(first, lambda prefix: logs({"0": 1.0})), word_numbers(first, WordScores(5.0)))
    assert numbers == pytest.approx({70: 0.5, 5.0: 0.5})
    assert score_from_numbers(numbers, first).score == 37.5
    replies = ["REFUSAL", "70", "code", "refusal: I won't"]
    assert sampled_score(replies).score == 70.0  # one number in four: exactly the quarter needed
    assert sampled_score(replies, WordScores(refusal=0.0, code=50.0)).score == 30.0  # (0 + 70 + 50 + 0) / 4


def test_word_scores_name_themselves_only_when_something_is_mapped():
    assert WordScores().tag == "" and WordScores().mapped() == {}
    assert WordScores(refusal=0.0).tag == "refusal=0"
    assert WordScores(refusal=12.5, code=100.0).tag == "refusal=12.5,code=100"
