"""Per-cycle means with 95% bootstrap confidence intervals that resample questions.

Several answers to one question are not independent draws, so the bootstrap resamples questions (each
question's mean score) rather than individual answers; the point estimate is the mean of question means, and
the standard error is the spread of question means over the square root of their count.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
from pydantic import BaseModel
from scipy.stats import bootstrap


class ScoreSummary(BaseModel):
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    se: float | None = None
    n_scored: int
    n_questions: int


def summarize_scores(
    question_ids: list[int], scores: list[float | None], resamples: int = 2000, seed: int = 0
) -> ScoreSummary:
    """Mean of per-question means and its 95% percentile bootstrap CI over questions (unscored answers skipped)."""
    by_question: dict[int, list[float]] = defaultdict(list)
    for question, score in zip(question_ids, scores, strict=True):
        if score is not None and not math.isnan(score):
            by_question[question].append(score)
    means = np.array([np.mean(v) for _, v in sorted(by_question.items())])
    scored = sum(len(v) for v in by_question.values())
    if len(means) == 0:
        return ScoreSummary(mean=None, ci_low=None, ci_high=None, n_scored=0, n_questions=0)
    mean = round(float(means.mean()), 4)
    if len(means) == 1 or np.ptp(means) == 0:
        return ScoreSummary(mean=mean, ci_low=mean, ci_high=mean, se=0.0, n_scored=scored, n_questions=len(means))
    result = bootstrap((means,), np.mean, n_resamples=resamples, method="percentile", rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return ScoreSummary(
        mean=mean,
        ci_low=round(float(low), 4),
        ci_high=round(float(high), 4),
        se=round(float(means.std(ddof=1) / math.sqrt(len(means))), 4),
        n_scored=scored,
        n_questions=len(means),
    )
