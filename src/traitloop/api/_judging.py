"""Judging files of answers with any judge, and agreement between judges."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from traitloop._atomic import write_jsonl
from traitloop._progress import Progress
from traitloop.errors import UserError
from traitloop.judge import (
    Agreement,
    Judge,
    NllScorer,
    agreement,
    judge_kind,
    judge_label,
    parse_judge_option,
    read_items,
    score_rows,
)
from traitloop.loop import quiet_libraries
from traitloop.models import load_model, load_tokenizer, resolve_model
from traitloop.traits import load_trait


def _judge_pair(spec, trait_spec, model: str, nll_scorer, progress: Progress) -> tuple[Judge, Judge]:
    """The trait and coherence judges one ``--judge`` option names (a server judge scores both)."""
    kind = judge_kind(spec)
    return kind.trait_judge(spec, trait_spec, True, progress), kind.coherence_judge(spec, nll_scorer, model)


def _score_file(
    trait: str, input: Path, model: str, judges: list[str], api_key_env: str | None, console: Console | None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of ``input`` scored by every judge, each judge's progress shown on ``console``: the first judge's
    scores in the usual columns and, with several judges, each judge's scores under ``judgements[label]``."""
    spec = load_trait(trait)
    specs = [parse_judge_option(j, api_key_env) for j in judges]
    rows, items = read_items(input)
    quiet_libraries()
    nll: list[Any] = []

    def nll_scorer():
        if not nll:
            base = resolve_model(model)
            nll.append(NllScorer(load_model(base), load_tokenizer(base)))
        return nll[0]

    labels = [judge_label(s) for s in specs]
    for index, (label, judge_spec) in enumerate(zip(labels, specs, strict=True)):
        scores: list[dict[str, Any]] = [{} for _ in rows]
        progress = Progress(console)
        score_rows(scores, items, *_judge_pair(judge_spec, spec, model, nll_scorer, progress), progress, label)
        for row, by_this_judge in zip(rows, scores, strict=True):
            if len(specs) > 1:
                row.setdefault("judgements", {})[label] = by_this_judge
            if index == 0:
                row.update(by_this_judge)
    return rows, labels


def judge_file(
    trait: str,
    input: Path,
    output: Path,
    model: str = "smollm2-135m-instruct",
    judges: list[str] | None = None,
    api_key_env: str | None = None,
    console: Console | None = None,
) -> int:
    """Score every row of ``input`` for trait and coherence; write ``output``; return the number of rows.

    ``judges`` are ``embedded`` (default; ``model`` is the base model of its coherence judge) or
    ``openai:MODEL@URL`` server judges, whose API key is read from the environment variable ``api_key_env``.
    Progress goes to ``console``: a bar on a terminal, a plain line now and then elsewhere.
    """
    rows, _ = _score_file(trait, input, model, judges or ["embedded"], api_key_env, console)
    write_jsonl(output, rows)
    return len(rows)


def judge_agreement(
    trait: str,
    input: Path,
    judges: list[str],
    output: Path | None = None,
    model: str = "smollm2-135m-instruct",
    api_key_env: str | None = None,
    console: Console | None = None,
) -> list[Agreement]:
    """Score ``input`` with two or more judges and compare each later judge with the first, for trait and
    coherence: Spearman correlation, mean absolute difference, Bland-Altman bias and limits of agreement."""
    if len(judges) < 2:
        raise UserError("judge agreement needs at least two judges, e.g. --judge embedded,openai:MODEL@URL")
    rows, labels = _score_file(trait, input, model, judges, api_key_env, console)
    if output is not None:
        write_jsonl(output, rows)
    results = []
    for measure in ("trait", "coherence"):
        scores = {label: [row["judgements"][label][f"{measure}_score"] for row in rows] for label in labels}
        for other in labels[1:]:
            results.append(agreement(scores[labels[0]], scores[other], labels[0], other, measure))
    return results
