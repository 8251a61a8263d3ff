"""Judges behind one interface: a list of (question, answer) items in, one 0-100 judgement per item out."""

from traitloop._http import JudgeUnavailable
from traitloop.judge._agreement import Agreement, agreement
from traitloop.judge._coherence import (
    coherence_from_signals,
    embedded_coherence_judge,
    embedded_coherence_judge_id,
)
from traitloop.judge._embedded import embedded_trait_judge, embedded_trait_judge_id
from traitloop.judge._openai import OpenAIJudge, openai_judge
from traitloop.judge._prompts import TEMPLATE_VERSION
from traitloop.judge._sdf import embedded_sdf_judge, embedded_sdf_judge_id
from traitloop.judge._signals import NllScorer, distinct_n, letter_share, repetition
from traitloop.judge._types import Item, Judge, Judgement

__all__ = [
    "TEMPLATE_VERSION",
    "Agreement",
    "Item",
    "Judge",
    "JudgeUnavailable",
    "Judgement",
    "OpenAIJudge",
    "agreement",
    "NllScorer",
    "coherence_from_signals",
    "distinct_n",
    "embedded_coherence_judge",
    "embedded_coherence_judge_id",
    "embedded_sdf_judge",
    "embedded_sdf_judge_id",
    "embedded_trait_judge",
    "embedded_trait_judge_id",
    "letter_share",
    "openai_judge",
    "repetition",
]
