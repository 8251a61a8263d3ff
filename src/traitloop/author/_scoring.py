"""The trait judge's filter on written answers: seed answers kept at or above ``seed_min``, contrast answers at or
below ``contrast_max``, scored by the embedded judge (cross-fitted) or a server judge."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from traitloop._progress import Progress
from traitloop.author._author import answer_of, question_of
from traitloop.judge import JUDGE_VERSION, Item, OnJudged, classifier_judge, fit_digest, negatives

JudgeScores = Callable[
    [list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]], tuple[list[float], list[float]]
]


def embedded_scores(
    name: str,
    seeds: list[dict[str, Any]],
    contrast: list[dict[str, Any]],
    anchors: list[dict[str, Any]],
    folds: int = 5,
    progress: Progress | None = None,
) -> tuple[list[float], list[float]]:
    """The embedded judge's scores of each seed and contrast answer, cross-fitted: each answer is scored by a
    classifier fit on the others (in ``folds`` folds), the anchors and the negatives every embedded trait
    judge is fit against, so an answer is never judged by a classifier that saw it."""
    progress = progress or Progress.silent()
    rows = [(r, 1.0) for r in seeds] + [(r, 0.0) for r in contrast]
    fold_of = [i % folds for i in range(len(rows))]
    random.Random(0).shuffle(fold_of)
    scores = [0.0] * len(rows)
    fixed = _fixed(name, seeds, anchors)
    with progress.task(f"judging {len(rows)} answers ({folds} folds)", len(rows)) as step:
        for fold in range(folds):
            train = [(answer_of(r), t) for (r, t), f in zip(rows, fold_of, strict=True) if f != fold] + fixed
            held = [i for i, f in enumerate(fold_of) if f == fold]
            judged = _fit_and_score("author-fold", name, train, [rows[i][0] for i in held], progress, step)
            for i, score in zip(held, judged, strict=True):
                scores[i] = score
    return scores[: len(seeds)], scores[len(seeds) :]


def _fixed(name: str, seeds: list[dict[str, Any]], anchors: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """What every fit learns besides the rows: the negatives every embedded trait judge is fit against, and the
    anchors at their scores."""
    own = {answer_of(r) for r in seeds}
    return [(a, 0.0) for a in negatives(name, own)] + [(answer_of(r), r["score"] / 100) for r in anchors]


def _fit_and_score(
    kind: str,
    name: str,
    train: list[tuple[str, float]],
    rows: list[dict[str, Any]],
    progress: Progress,
    on_judged: OnJudged,
) -> list[float]:
    texts, targets = [t for t, _ in train], [y for _, y in train]
    judge = classifier_judge(f"{kind}/{name}/{fit_digest(JUDGE_VERSION, texts, targets)}", texts, targets, progress)
    judged = judge([Item(question_of(r), answer_of(r)) for r in rows], on_judged)
    return [j.score if j.score is not None else float("nan") for j in judged]


def embedded_rounds(
    name: str, anchors: list[dict[str, Any]], progress: Progress | None = None
) -> Callable[..., tuple[list[float], list[float]]]:
    """Scores of (seed rows, contrast rows) round after round: the first rows cross-fitted
    (:func:`embedded_scores`), each later round's new rows by one classifier fit on every row scored before.
    A row keeps its score, so what one round kept stays kept, and no answer is judged by a fit that saw it."""
    known: dict[tuple[float, str, str], float] = {}
    progress = progress or Progress.silent()

    def scores(seeds: list[dict[str, Any]], contrast: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
        rows = [(r, 1.0) for r in seeds] + [(r, 0.0) for r in contrast]
        keys = [(target, question_of(r), answer_of(r)) for r, target in rows]
        new = [i for i, key in enumerate(keys) if key not in known]
        if new and len(new) == len(rows):
            first = embedded_scores(name, seeds, contrast, anchors, progress=progress)
            known.update(zip(keys, [*first[0], *first[1]], strict=True))
        elif new:
            seen = [(answer_of(r), target) for (r, target), key in zip(rows, keys, strict=True) if key in known]
            train = seen + _fixed(name, seeds, anchors)
            with progress.task(f"judging {len(new)} new answers", len(new)) as step:
                judged = _fit_and_score("author-round", name, train, [rows[i][0] for i in new], progress, step)
            known.update(zip([keys[i] for i in new], judged, strict=True))
        values = [known[key] for key in keys]
        return values[: len(seeds)], values[len(seeds) :]

    return scores


def server_scores(judge, progress: Progress | None = None) -> JudgeScores:  # noqa: ANN001 - an OpenAIJudge
    """Scores from a server trait judge (it reads the description, rubric and anchors of the draft spec)."""
    progress = progress or Progress.silent()

    def scores(seeds, contrast, anchors) -> tuple[list[float], list[float]]:  # noqa: ANN001
        items = [Item(question_of(r), answer_of(r)) for r in [*seeds, *contrast]]
        with progress.task(f"judging {len(items)} answers", len(items)) as step:
            judged = judge(items, step)
        values = [j.score if j.score is not None else float("nan") for j in judged]
        return values[: len(seeds)], values[len(seeds) :]

    return scores


def judge_filter(
    rows: list[dict[str, Any]], scores: list[float], keep: Callable[[float], bool], removed: dict[str, int], rule: str
) -> list[dict[str, Any]]:
    kept = [dict(r, judge_score=round(s, 2)) for r, s in zip(rows, scores, strict=True) if keep(s)]
    removed[f"trait judge ({rule})"] = len(rows) - len(kept)
    return kept
