"""Judges behind one interface: a list of (question, answer) items in, one 0-100 judgement per item out."""

from traitloop._http import JudgeUnavailable
from traitloop.judge._agreement import Agreement, agreement
from traitloop.judge._cache import CachedJudgement, JudgementCache, cache_key
from traitloop.judge._coherence import (
    coherence_from_signals,
    embedded_coherence_judge,
    embedded_coherence_judge_id,
)
from traitloop.judge._embedded import (
    JUDGE_VERSION,
    classifier_judge,
    embed,
    embedded_trait_judge,
    embedded_trait_judge_id,
    fit_digest,
    negatives,
)
from traitloop.judge._openai import OpenAIJudge, openai_judge
from traitloop.judge._prompts import TEMPLATE_VERSION
from traitloop.judge._sdf import embedded_sdf_judge, embedded_sdf_judge_id
from traitloop.judge._signals import NllScorer, distinct_n, letter_share, repetition
from traitloop.judge._specs import server_judge
from traitloop.judge._types import Item, Judge, Judgement

__all__ = [
    "JUDGE_VERSION",
    "TEMPLATE_VERSION",
    "Agreement",
    "CachedJudgement",
    "Item",
    "Judge",
    "JudgeUnavailable",
    "Judgement",
    "JudgementCache",
    "OpenAIJudge",
    "agreement",
    "NllScorer",
    "cache_key",
    "classifier_judge",
    "coherence_from_signals",
    "distinct_n",
    "embed",
    "embedded_coherence_judge",
    "embedded_coherence_judge_id",
    "embedded_sdf_judge",
    "embedded_sdf_judge_id",
    "embedded_trait_judge",
    "embedded_trait_judge_id",
    "fit_digest",
    "letter_share",
    "negatives",
    "openai_judge",
    "repetition",
    "server_judge",
]
