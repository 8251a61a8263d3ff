"""A run's summary table: one row per (eval set, generation), built in one place from the run folder's records.

The run writes it as ``summary.csv`` when it finishes; analysis writes the same rows, with each run's identity
and the thresholded rate it is asked for, to ``summary.parquet``. Both come from the answers in ``eval.jsonl``
(every measure's mean, CI, standard error and counts, with the question bootstrap the evaluation uses) and the
``training`` block of the generation's ``metrics.json``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from traitloop.config import MAIN_SUITE, NO_CONTEXT
from traitloop.rundir._folder import RunFolder
from traitloop.stats import summarize_scores

# Every per-answer measure a summary gives, and its eval.jsonl column. The persona-direction projections are
# optional: ``projection`` over each answer, ``prompt_projection`` at each question's last prompt token.
MEASURES = {
    "trait": "trait_score",
    "coherence": "coherence_score",
    "projection": "projection",
    "prompt_projection": "prompt_projection",
}
# The generation's training facts, by the column that shows them; a method's own facts (DPO's rewards) follow.
TRAINING_COLUMNS = {
    "examples_trained": "examples",
    "tokens_trained": "tokens",
    "optimizer_steps": "steps",
    "train_loss_last": "loss_last",
}
TRAINING_FACTS = ("examples", "steps", "tokens", "loss_first", "loss_last", "started_from")


def present(value: Any) -> float | None:
    """A number as a float, or None where it is missing (None, or NaN as pandas reads a missing value)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def _mean(values: list[Any]) -> float | None:
    found = [v for v in map(present, values) if v is not None]
    return round(sum(found) / len(found), 4) if found else None


def generation_row(
    answers: list[dict[str, Any]], training: dict[str, Any], resamples: int, seed: int
) -> dict[str, Any]:
    """One generation's row from its answers (eval.jsonl rows) and its training facts (empty for the base)."""
    questions = [a["question_index"] for a in answers]
    row: dict[str, Any] = {"n_answers": len(answers)}
    for measure, column in MEASURES.items():
        summary = summarize_scores(questions, [present(a.get(column)) for a in answers], resamples, seed)
        row |= {f"{measure}_{key}": value for key, value in summary.model_dump().items()}
    row |= {name: _mean([a.get(name) for a in answers]) for name in ("length_words", "distinct_2", "perplexity")}
    row |= {column: training.get(fact) for column, fact in TRAINING_COLUMNS.items()}
    return row | {fact: value for fact, value in training.items() if fact not in TRAINING_FACTS}


def summary_rows(run: RunFolder) -> list[dict[str, Any]]:
    """Every current (eval set, generation) of a run, the main evaluation first, base model first in each."""
    resamples, seed = run.config.evaluation.bootstrap_resamples, run.config.seed
    rows = []
    for eval_set in [None, *run.eval_sets()]:
        for cycle in run.current_generations(eval_set):
            path = run.eval_path(cycle, eval_set)
            answers = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            metrics = run.metrics(cycle, eval_set) or {}
            identity = {
                "cycle": cycle,
                "eval_set": eval_set,
                "suite": metrics.get("suite", MAIN_SUITE),
                "context": metrics.get("context", NO_CONTEXT),
            }
            rows.append(identity | generation_row(answers, run.training(cycle), resamples, seed))
    return rows
