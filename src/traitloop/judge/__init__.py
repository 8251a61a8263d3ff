"""Judges behind one interface: a list of (question, answer) items in, one 0-100 judgement per item out.

``JUDGE_KINDS`` is the registry a ``JudgeSpec``'s ``kind`` names (embedded, openai): a new kind is one module
and one line there. The judgement cache is here too, for every caller that asks a model and pays per reply.

May import: config, io, errors, _atomic, _http, _progress, traits, models.
"""

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
from traitloop.judge._files import read_items, score_rows
from traitloop.judge._kind import JudgeKind, NllFactory
from traitloop.judge._kind_openai import server_judge, server_trait_judge
from traitloop.judge._openai import OpenAIJudge, openai_judge
from traitloop.judge._prompts import TEMPLATE_VERSION
from traitloop.judge._registry import JUDGE_KINDS, check_judge_spec, judge_kind, judge_label, parse_judge_option
from traitloop.judge._sdf import embedded_sdf_judge, embedded_sdf_judge_id
from traitloop.judge._signals import NllScorer, distinct_n, letter_share, repetition, words
from traitloop.judge._types import Item, Judge, Judgement, OnJudged

__all__ = [
    "JUDGE_KINDS",
    "JUDGE_VERSION",
    "TEMPLATE_VERSION",
    "Agreement",
    "CachedJudgement",
    "Item",
    "Judge",
    "JudgeKind",
    "JudgeUnavailable",
    "JudgementCache",
    "Judgement",
    "NllFactory",
    "NllScorer",
    "OnJudged",
    "OpenAIJudge",
    "agreement",
    "cache_key",
    "check_judge_spec",
    "JudgementCache",
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
    "judge_kind",
    "judge_label",
    "fit_digest",
    "letter_share",
    "negatives",
    "openai_judge",
    "parse_judge_option",
    "read_items",
    "repetition",
    "score_rows",
    "server_judge",
    "server_trait_judge",
    "words",
]
