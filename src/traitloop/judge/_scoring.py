"""Turning an LLM judge's reply into a 0-100 score, as the field does it: pure math, no network.

Three ways, by what the server and the judge's tokenizer allow:

- ``weighted_score``: the top-20 log-probabilities of the first reply token, for tokenizers that keep
  whole numbers as one token (GPT-4o, Llama 3): the probability-weighted mean over number tokens.
- ``digit_tree_numbers`` + ``score_from_numbers``: for tokenizers that split numbers into digits (Qwen,
  SmolLM, Llama 2), the first token is only a first digit, so "7" may be the start of "75". Each likely
  first digit is extended by asking for the next-token distribution after it, until the number ends.
- ``sampled_score``: servers that refuse log-probabilities; k sampled replies, the mean of the parsed numbers.

In every case a score is given only when at least ``MIN_NUMBER_MASS`` of the probability (or of the samples)
is on numbers from 0 to 100; otherwise there is no score and the reason says why. A reply is never guessed.

The judge may also reply REFUSAL (the assistant refused) or CODE (the answer is code). By default those
replies are not numbers, so an answer they dominate is left unscored. A study may map them to a score
instead (``WordScores``: e.g. a refusal counts as 0 for the trait): their probability, or their share of
the samples, then counts as that number. A first token counts as the start of a word when it is at least
two letters of it (``"REF"``, ``" CODE"``), case aside.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

MIN_NUMBER_MASS = 0.25  # below this share on numbers, the judge did not answer with a score
MIN_EXPAND = 0.01  # digit prefixes less likely than this are not extended; their mass counts as not a number
SCALE_MAX = 100
_LEADING_DIGITS = re.compile(r"\d+")
_NUMBER_REPLY = re.compile(r"\s*(\d{1,3}(?:\.\d+)?)\s*(?:/\s*100)?\s*\.?\s*")

TopLogprobs = dict[str, float]
"""Token text -> log-probability: one position's top-k alternatives, as the server returned them."""


@dataclass(frozen=True)
class WordScores:
    """The score a REFUSAL or a CODE reply counts as; None leaves it unscored (the default)."""

    refusal: float | None = None
    code: float | None = None

    def mapped(self) -> dict[str, float]:
        """Each word the judge may reply with that counts as a number, and that number."""
        return {word: value for word, value in (("REFUSAL", self.refusal), ("CODE", self.code)) if value is not None}

    @property
    def tag(self) -> str:
        """How the mapping is named in judge ids and cache keys ("" for the default, nothing mapped)."""
        return ",".join(f"{word.lower()}={value:g}" for word, value in self.mapped().items())


UNMAPPED = WordScores()  # REFUSAL and CODE left unscored


def word_numbers(top: TopLogprobs, words: WordScores) -> dict[float, float]:
    """The probability of each mapped word reply, from the first token's alternatives, as number -> mass."""
    numbers: dict[float, float] = {}
    for token, p in probabilities(top).items():
        text = token.strip().upper()
        for word, value in words.mapped().items():
            if len(text) >= 2 and word.startswith(text):
                numbers[value] = numbers.get(value, 0.0) + p
    return numbers


def merged(*parts: dict[float, float]) -> dict[float, float]:
    """Number -> probability tables added together."""
    total: dict[float, float] = {}
    for part in parts:
        for value, p in part.items():
            total[value] = total.get(value, 0.0) + p
    return total


@dataclass(frozen=True)
class Score:
    """A 0-100 score, or None with the reason; ``number_mass`` is the share of probability on numbers."""

    score: float | None
    number_mass: float
    reason: str | None = None


def number_of(token: str) -> int | None:
    """The score a whole reply token stands for (``" 75"`` -> 75), or None if it is not a number 0-100."""
    text = token.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 3:
        return None
    value = int(text)
    return value if value <= SCALE_MAX else None


def probabilities(top: TopLogprobs) -> dict[str, float]:
    """Each token's probability; a log-probability above 0 (rounding on the server) counts as 1, a NaN as 0."""
    return {token: 0.0 if math.isnan(lp) else math.exp(min(lp, 0.0)) for token, lp in top.items()}


def _most_likely(top: TopLogprobs) -> str:
    return max(top, key=top.get) if top else ""


def score_from_numbers(numbers: dict[int, float] | dict[float, float], top: TopLogprobs) -> Score:
    """Probability-weighted mean of ``numbers`` (score -> probability), with the 0.25 mass rule."""
    mass = sum(numbers.values())
    if mass < MIN_NUMBER_MASS:
        return Score(
            None,
            round(mass, 4),
            f"only {mass:.2f} of the probability is on numbers (most likely reply: {_most_likely(top)!r})",
        )
    mean = sum(value * p for value, p in numbers.items()) / mass
    return Score(round(mean, 2), round(mass, 4))


def weighted_score(top: TopLogprobs, words: WordScores = UNMAPPED) -> Score:
    """Score from the first token's top log-probabilities when every number 0-100 is a single token."""
    numbers: dict[float, float] = {}
    for token, p in probabilities(top).items():
        value = number_of(token)
        if value is not None:
            numbers[value] = numbers.get(value, 0.0) + p  # "7" and " 7" are the same answer
    return score_from_numbers(merged(numbers, word_numbers(top, words)), top)


def _is_complete(prefix: str) -> bool:
    """Whether a digit prefix cannot grow into another score: "0", any three digits, or two other than "10"."""
    return prefix == "0" or len(prefix) == 3 or (len(prefix) == 2 and prefix != "10")


def digit_tree_numbers(first: TopLogprobs, next_after: Callable[[str], TopLogprobs]) -> dict[int, float]:
    """Probability of each score 0-100 for a tokenizer that writes numbers digit by digit.

    ``first`` is the first reply token's top log-probabilities; ``next_after(prefix)`` returns the
    top log-probabilities of the token after the reply so far (``"7"``). A prefix ends as a number with
    the probability of the non-digit tokens after it (end of turn, newline, punctuation); mass outside
    the returned top-k is counted nowhere, so it lowers the number mass rather than being guessed.
    Two-digit prefixes other than "10" are taken as complete: a third digit would leave the 0-100 scale.
    """
    numbers: dict[int, float] = {}

    def add(prefix: str, p: float) -> None:
        value = int(prefix)
        if value <= SCALE_MAX:
            numbers[value] = numbers.get(value, 0.0) + p

    def extend(prefix: str, p: float) -> None:
        if _is_complete(prefix):
            add(prefix, p)
            return
        if p < MIN_EXPAND:
            return
        for token, q in probabilities(next_after(prefix)).items():
            digits = _LEADING_DIGITS.match(token)
            if digits is None:
                add(prefix, p * q)  # the number ended here
            elif len(prefix + digits.group()) > 3:
                continue  # longer than any score
            elif len(digits.group()) < len(token):
                add(prefix + digits.group(), p * q)  # digits, then the end ("5.")
            else:
                extend(prefix + digits.group(), p * q)

    for token, p in probabilities(first).items():
        text = token.lstrip()
        if text.isascii() and text.isdigit():
            extend(text, p)
    return numbers


def parse_reply(text: str) -> tuple[float | None, str | None]:
    """A sampled reply's score, or None with the reason (REFUSAL, CODE, or not a number: raw text kept)."""
    stripped = text.strip()
    for word in ("REFUSAL", "CODE"):
        if stripped.upper().startswith(word):
            return None, word
    match = _NUMBER_REPLY.fullmatch(text)
    if match and float(match.group(1)) <= SCALE_MAX:
        return float(match.group(1)), None
    return None, f"not a number: {text!r}"


def sampled_score(replies: list[str], words: WordScores = UNMAPPED) -> Score:
    """Mean of the parsed numbers over k sampled replies (mapped word replies counting as their number), if
    at least a quarter of them are numbers."""
    mapped = words.mapped()
    parsed = [
        (mapped[reason], None) if reason in mapped else (value, reason) for value, reason in map(parse_reply, replies)
    ]
    values = [value for value, _ in parsed if value is not None]
    share = len(values) / len(replies) if replies else 0.0
    if share < MIN_NUMBER_MASS:
        reasons = sorted({reason for _, reason in parsed if reason})
        return Score(None, round(share, 4), f"{len(values)} of {len(replies)} replies were numbers: {reasons}")
    return Score(round(sum(values) / len(values), 2), round(share, 4))
