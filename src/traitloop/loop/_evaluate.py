"""Evaluating one generation: answer every eval question several times, then judge and measure each answer."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from traitloop._progress import Progress
from traitloop.generate import Generator, SamplingParams
from traitloop.judge import Item, Judge, NllScorer, distinct_n, words
from traitloop.loop._evals import EvalSet
from traitloop.measure import persona_direction, project_prompts, project_responses
from traitloop.models import base_view
from traitloop.rundir import EvalRecord
from traitloop.stats import summarize_scores
from traitloop.traits import TraitSpec


def evaluate_generation(
    generator: Generator,
    model: PreTrainedModel,
    base_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    eval_set: EvalSet,
    samples: int,
    params: SamplingParams,
    trait_judge: Judge,
    make_coherence_judge: Callable[[Any], Judge],
    cycle: int | None,
    progress: Progress | None = None,
    chat: bool = True,
    persona: TraitSpec | None = None,
    name: str = "evaluation",
) -> tuple[list[EvalRecord], dict[str, Any]]:
    """Sample ``samples`` answers per question of ``eval_set`` (in its context) from ``generator`` and score them;
    ``base_model`` gives perplexity. The judges see the question and the answer, not the context before them.
    With ``persona``, each answer (and each question before it is answered) is also projected on that trait's
    persona direction in ``model``, the generation's own weights. Returns the records and the persona facts.
    Each step shows its progress in ``progress``, named after ``name`` (the generation and eval set).

    With ``chat=False`` (SDF) each "question" is a document prefix and the answer its raw continuation.
    """
    progress = progress or Progress.silent()
    questions = eval_set.questions
    asked = [(qi, s) for qi in range(len(questions)) for s in range(samples)]
    with progress.task(f"{name}: answering", len(asked)) as step:
        if chat:
            answers = generator.generate(eval_set.chats([questions[qi] for qi, _ in asked]), params, step)
        else:
            answers = generator.complete([questions[qi] for qi, _ in asked], params, step)
    items = [Item(questions[qi], answer) for (qi, _), answer in zip(asked, answers, strict=True)]
    nll = NllScorer(base_model, tokenizer, chat=chat, answer_tokens=params.max_new_tokens)
    pairs = [i.question for i in items], [i.answer for i in items]
    with base_view(base_model):
        with progress.task(f"{name}: coherence judge", len(items)) as step:
            coherence = make_coherence_judge(nll)(items, step)
        if nll.pending(*pairs):  # the embedded coherence judge has read them all already
            with progress.task(f"{name}: perplexity", len(items)) as step:
                nll.token_nlls(*pairs, step)
        nlls = nll(*pairs)
    with progress.task(f"{name}: trait judge", len(items)) as step:
        traits = trait_judge(items, step)
    projections, facts = (
        persona_projections(model, base_model, tokenizer, persona, eval_set, asked, answers, progress, name)
        if persona is not None
        else ([(None, None)] * len(asked), {})
    )
    records = [
        EvalRecord(
            cycle=cycle,
            question_index=qi,
            sample=s,
            question=item.question,
            answer=item.answer,
            trait_score=t.score,
            trait_reason=t.reason,
            trait_judge=t.judge_id,
            coherence_score=c.score,
            coherence_reason=c.reason,
            coherence_judge=c.judge_id,
            length_words=len(words(item.answer)),
            distinct_2=round(distinct_n(item.answer, 2), 4),
            base_nll=None if math.isnan(n) else round(n, 4),
            perplexity=None if math.isnan(n) else round(math.exp(n), 3),
            projection=projection,
            prompt_projection=prompt_projection,
            **(
                {"eval_set": eval_set.name, "suite": eval_set.suite, "context": eval_set.context}
                if eval_set.name
                else {}
            ),
        )
        for (qi, s), item, t, c, n, (projection, prompt_projection) in zip(
            asked, items, traits, coherence, nlls, projections, strict=True
        )
    ]
    return records, facts


def persona_projections(
    model: PreTrainedModel,
    base_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    trait: TraitSpec,
    eval_set: EvalSet,
    asked: list[tuple[int, int]],
    answers: list[str],
    progress: Progress,
    name: str,
) -> tuple[list[tuple[float | None, float | None]], dict[str, Any]]:
    """Each answer's projection on the trait's persona direction (found once in the base model, then cached),
    read in the generation's own weights after its question (in the eval set's context), paired with that
    question's projection before answering; and what identifies the direction (layer, held-out AUROC, key)."""
    direction = persona_direction(base_model, tokenizer, trait, progress=progress)
    questions = eval_set.chats(eval_set.questions)
    with progress.task(f"{name}: persona projections", len(asked) + len(questions)) as step:
        asked_questions = [questions[qi] for qi, _ in asked]
        per_answer = project_responses(model, tokenizer, direction, asked_questions, answers, on_batch=step)
        per_question = project_prompts(model, tokenizer, direction, questions, on_batch=step)
    pairs = [(_rounded(value), _rounded(per_question[qi])) for value, (qi, _) in zip(per_answer, asked, strict=True)]
    return pairs, {"layer": direction.layer, "auroc": direction.auroc, "direction": direction.key}


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def metrics_from_records(records: list[EvalRecord], resamples: int, seed: int) -> dict[str, Any]:
    """Per-generation aggregates: trait and coherence means with question-level bootstrap CIs, and signals."""
    questions = [r.question_index for r in records]

    def mean(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return round(sum(present) / len(present), 4) if present else None

    return {
        "n_answers": len(records),
        "trait": summarize_scores(questions, [r.trait_score for r in records], resamples, seed).model_dump(),
        "coherence": summarize_scores(questions, [r.coherence_score for r in records], resamples, seed).model_dump(),
        "length_words": mean([r.length_words for r in records]),
        "distinct_2": mean([r.distinct_2 for r in records]),
        "perplexity": mean([r.perplexity for r in records]),
        "projection": summarize_scores(questions, [r.projection for r in records], resamples, seed).model_dump(),
        "prompt_projection": summarize_scores(
            questions, [r.prompt_projection for r in records], resamples, seed
        ).model_dump(),
        "judges": sorted({r.trait_judge for r in records} | {r.coherence_judge for r in records}),
    }
