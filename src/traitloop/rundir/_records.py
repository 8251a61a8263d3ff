"""The records a run folder holds per answer (``eval.jsonl``), versioned so that a newer file is refused."""

from __future__ import annotations

from pydantic import BaseModel

EVAL_SCHEMA_VERSION = 2  # 2: projection, prompt_projection; eval_set, suite, context


class EvalRecord(BaseModel):
    """One row of ``eval.jsonl``: one sampled answer to one eval question, with every score it got."""

    schema_version: int = EVAL_SCHEMA_VERSION
    cycle: int | None  # None for the base model
    question_index: int
    sample: int
    question: str
    answer: str
    trait_score: float | None
    trait_reason: str | None = None
    trait_judge: str
    coherence_score: float | None
    coherence_reason: str | None = None
    coherence_judge: str
    length_words: int
    distinct_2: float
    base_nll: float | None
    perplexity: float | None
    projection: float | None = None  # on the trait's persona direction, over the answer, in the generation's weights
    prompt_projection: float | None = None  # the same at the question's last prompt token, before answering
    eval_set: str | None = None  # None: the generation's main evaluation
    suite: str | None = None
    context: str | None = None
