"""The embedded coherence judge: base-model likelihood plus degeneration signals, mapped to 0-100.

Its rubric mirrors the LLM judges' (0 = not language, 50 = rambling, 100 = clear and on-topic) but is
computed, not asked: fluency from the answer's per-token likelihood under the base model (given the
question, so an off-topic reply is less likely), times penalties for loops (repeated n-grams), symbol soup
(few letters) and an answer cut off mid-sentence. The thresholds were set on the embedded model's own
answers and the built-in seed sets; ``scripts/validate_judges.py`` measures how well it separates real
answers from corrupted ones.
"""

from __future__ import annotations

from traitloop.judge._signals import NllScorer, letter_share, repetition
from traitloop.judge._types import Item, Judge, Judgement

COHERENCE_VERSION = 1
NLL_FLUENT = 3.0  # nats/token at or below which an answer counts as fully fluent
NLL_NOISE = 6.5  # nats/token at or above which it reads as noise
_ENDINGS = tuple(".!?)\"'*]:;…") + ("```",)


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def coherence_from_signals(nll: float, answer: str) -> float:
    """0-100 coherence from an answer's base-model NLL (nats/token) and its text."""
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

    def judge(items: list[Item]) -> list[Judgement]:
        scorable = [i for i, item in enumerate(items) if item.answer.strip()]
        values = nll([items[i].question for i in scorable], [items[i].answer for i in scorable])
        by_index = dict(zip(scorable, values, strict=True))
        return [
            Judgement(coherence_from_signals(by_index[i], items[i].answer), judge_id)
            if i in by_index
            else Judgement(None, judge_id, "empty answer")
            for i in range(len(items))
        ]

    return judge
