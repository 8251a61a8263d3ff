"""The embedded coherence judge: base-model likelihood plus degeneration signals, mapped to 0-100.

Its rubric mirrors the LLM judges' (0 = not language, 50 = rambling, 100 = clear and on-topic) but is
computed, not asked: fluency from how surprising the answer's tokens are under the base model (given the
question, so an off-topic reply is less likely), times penalties for loops (repeated n-grams), symbol soup
(few letters) and an answer cut off mid-sentence.

Fluency must not be a measure of style. A plain mean of per-token NLLs is dominated by a few tokens the
base model did not expect: an emoji, a rare word, an unusual turn of phrase, which is exactly how a trait
shows. Version 1 used that mean, calibrated on the embedded model's own answers (about 1.3 nats/token, as
a model's own samples are), so coherent human-written answers with the trait's style (the built-in seed
answers, 3.7-4.1) scored 69-80 against 91 for ordinary answers: the measure built an
amplification-coherence trade-off into every run. Version 2 changes both:

- Fluency reads the *typical* token: the mean NLL of the answer's least surprising ``1 - TRIM_SHARE`` of
  tokens, which discounts the rare content words and emojis that carry style. Word order still counts in
  every token: shuffled words and gibberish stay surprising throughout (typical NLL 5.7 and 5.0 on
  average, against 2.4-2.8 for the seed answers of each built-in trait).
- The scale is calibrated on coherent text a person wrote rather than on the model's own: fully fluent at
  or below ``NLL_FLUENT``, about the most surprising plain human-written answer in the built-in contrast
  sets (their 95th percentile is 2.7, their maximum 3.1); noise at or above ``NLL_NOISE``, under every
  gibberish copy and 95% of shuffled copies of real answers.

``scripts/validate_judges.py`` reports the judge on the seed answers, ordinary answers and corrupted copies.
"""

from __future__ import annotations

import math

import numpy as np

from traitloop.judge._signals import NllScorer, letter_share, repetition
from traitloop.judge._types import Item, Judge, Judgement, OnJudged

COHERENCE_VERSION = 2
TRIM_SHARE = 0.2  # share of an answer's most surprising tokens left out of its fluency
NLL_FLUENT = 3.0  # typical nats/token at or below which an answer counts as fully fluent
NLL_NOISE = 4.5  # typical nats/token at or above which it reads as noise
_ENDINGS = tuple(".!?)\"'*]:;…") + ("```",)


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def typical_nll(token_nlls: np.ndarray) -> float:
    """Mean NLL of the least surprising ``1 - TRIM_SHARE`` of the tokens (NaN for no tokens)."""
    if not token_nlls.size:
        return math.nan
    kept = max(1, round(token_nlls.size * (1 - TRIM_SHARE)))
    return float(np.sort(token_nlls)[:kept].mean())


def coherence_from_signals(nll: float, answer: str) -> float:
    """0-100 coherence from an answer's typical base-model NLL (nats/token, see ``typical_nll``) and its text."""
    fluency = _clip((NLL_NOISE - nll) / (NLL_NOISE - NLL_FLUENT))
    not_looping = _clip(1.0 - (repetition(answer) - 0.15) / 0.35)
    readable = _clip((letter_share(answer) - 0.45) / 0.3)
    text = answer.rstrip()
    finished = 1.0 if text.endswith(_ENDINGS) or not text[-1:].isalnum() else 0.9
    return round(100 * fluency * not_looping * readable * finished, 2)


def embedded_coherence_judge_id(base_model: str) -> str:
    return f"embedded-coherence/v{COHERENCE_VERSION}/{base_model}"


def embedded_coherence_judge(nll: NllScorer, base_model: str) -> Judge:
    """Build the no-network coherence judge over a base-model likelihood scorer."""
    judge_id = embedded_coherence_judge_id(base_model)

    def judge(items: list[Item], on_judged: OnJudged | None = None) -> list[Judgement]:
        scorable = [i for i, item in enumerate(items) if item.answer.strip()]
        if on_judged:
            on_judged(len(items) - len(scorable))  # empty answers: judged at once
        questions, answers = [items[i].question for i in scorable], [items[i].answer for i in scorable]
        values = nll.token_nlls(questions, answers, on_judged)
        by_index = {i: typical_nll(v) for i, v in zip(scorable, values, strict=True)}
        return [
            Judgement(coherence_from_signals(by_index[i], items[i].answer), judge_id)
            if i in by_index
            else Judgement(None, judge_id, "empty answer")
            for i in range(len(items))
        ]

    return judge
