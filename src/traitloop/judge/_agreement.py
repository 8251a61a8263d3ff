"""How well two judges agree on the same answers: does the cheap judge track the expensive one?

Spearman's rank correlation says whether they order answers alike; the mean absolute difference says how
far apart their scores are; the Bland-Altman bias (mean of a - b) and 95% limits of agreement
(bias +/- 1.96 standard deviations of the differences) say whether one judge scores systematically higher
and how far apart they can be on a single answer. Only answers both judges scored are compared.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel
from scipy.stats import spearmanr


class Agreement(BaseModel):
    measure: str  # what was scored: trait or coherence
    judge_a: str
    judge_b: str
    n: int
    spearman: float | None = None
    mean_abs_diff: float | None = None
    bias: float | None = None  # mean of (a - b)
    loa_low: float | None = None  # bias - 1.96 sd of the differences
    loa_high: float | None = None


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 4)


def agreement(
    a: list[float | None], b: list[float | None], judge_a: str, judge_b: str, measure: str = "trait"
) -> Agreement:
    """Agreement of two judges' scores on the same answers (``None`` where a judge gave no score)."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    if len(pairs) < 2:
        return Agreement(measure=measure, judge_a=judge_a, judge_b=judge_b, n=len(pairs))
    x, y = np.array(pairs).T
    diff = x - y
    bias, spread = diff.mean(), 1.96 * diff.std(ddof=1)
    rho = spearmanr(x, y).statistic if np.ptp(x) > 0 and np.ptp(y) > 0 else math.nan
    return Agreement(
        measure=measure,
        judge_a=judge_a,
        judge_b=judge_b,
        n=len(pairs),
        spearman=_rounded(rho),
        mean_abs_diff=_rounded(np.abs(diff).mean()),
        bias=_rounded(bias),
        loa_low=_rounded(bias - spread),
        loa_high=_rounded(bias + spread),
    )
