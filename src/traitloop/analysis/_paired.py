"""Paired tests over questions: is a generation's trait different from generation 0's, or from the base model's?

Every generation answers the same eval questions, so two generations are compared question by question: the
Wilcoxon signed-rank test on the per-question mean scores (no normality assumed; answers to one question are
averaged first, since they are not independent). Each test reports an effect size beside its p-value (the
mean paired difference with a bootstrap CI over questions, and the matched-pairs rank-biserial correlation),
and the p-values of one run are Holm-corrected together, since a run with many generations runs many tests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel
from scipy import stats

BASE_MODEL = "base model"
GENERATION_0 = "generation 0"
ALPHA = 0.05  # a change is beyond noise when its Holm-corrected p is below this and its CI excludes 0


class PairedTest(BaseModel):
    """One generation against one reference, over the questions both have scored answers to.

    ``mean_difference`` is generation − reference in score points; ``rank_biserial`` is in [−1, 1], positive
    when the generation scores higher on more (and larger) question differences. ``p_holm`` is the p-value
    Holm-corrected over every paired test of the run. ``note`` says why a value is missing.
    """

    generation: int | None
    reference: str
    n_questions: int
    mean_difference: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    wilcoxon_statistic: float | None = None
    p_value: float | None = None
    p_holm: float | None = None
    rank_biserial: float | None = None
    note: str | None = None


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment (strong control of the family-wise error rate); ``None`` entries are not
    part of the family and stay ``None``."""
    present = [(p, i) for i, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    running, m = 0.0, len(present)
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))  # never below an earlier, smaller p's adjustment
        adjusted[i] = running
    return adjusted


def rank_biserial(differences: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation: (R+ − R−) / (R+ + R−) over the ranks of the non-zero |d|."""
    nonzero = differences[differences != 0]
    if len(nonzero) == 0:
        return 0.0
    ranks = stats.rankdata(np.abs(nonzero))
    return float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())


def paired_test(
    generation: int | None, reference: str, scores: pd.Series, reference_scores: pd.Series, resamples: int, seed: int
) -> PairedTest:
    """Wilcoxon signed-rank test of ``scores`` against ``reference_scores`` (per-question means indexed by
    question), over the questions present in both; zero differences are dropped, as Wilcoxon proposed."""
    paired = pd.concat([scores, reference_scores], axis=1, join="inner").dropna()
    differences = (paired.iloc[:, 0] - paired.iloc[:, 1]).to_numpy(dtype=float)
    n = len(differences)
    if n == 0:
        return PairedTest(
            generation=generation, reference=reference, n_questions=0, mean_difference=None,
            note="no question has scored answers from both",
        )  # fmt: skip
    mean = float(differences.mean())
    low = high = mean
    if n >= 2 and np.ptp(differences) > 0:
        interval = stats.bootstrap(
            (differences,), np.mean, n_resamples=resamples, method="percentile", rng=np.random.default_rng(seed)
        ).confidence_interval
        low, high = float(interval.low), float(interval.high)
    nonzero = differences[differences != 0]
    statistic, p_value, note = 0.0, 1.0, "no question's mean changed"
    if len(nonzero):
        result = stats.wilcoxon(nonzero)
        statistic, p_value, note = float(result.statistic), float(result.pvalue), None
    return PairedTest(
        generation=generation,
        reference=reference,
        n_questions=n,
        mean_difference=round(mean, 4),
        ci_low=round(low, 4),
        ci_high=round(high, 4),
        wilcoxon_statistic=statistic,
        p_value=p_value,
        rank_biserial=round(rank_biserial(differences), 4),
        note=note,
    )


def paired_tests(question_means: dict[int | None, pd.Series], resamples: int, seed: int) -> list[PairedTest]:
    """Every generation ≥ 1 against generation 0, and every generation against the base model (key ``None``),
    with Holm-corrected p-values over all of them. Missing references give no tests."""
    generations = sorted(c for c in question_means if c is not None)
    tests = []
    if 0 in question_means:
        tests += [
            paired_test(c, GENERATION_0, question_means[c], question_means[0], resamples, seed)
            for c in generations
            if c > 0
        ]
    if None in question_means:
        tests += [
            paired_test(c, BASE_MODEL, question_means[c], question_means[None], resamples, seed) for c in generations
        ]
    for test, adjusted in zip(tests, holm([t.p_value for t in tests]), strict=True):
        test.p_holm = adjusted
    return tests


class Significance(BaseModel):
    """Is the change a verdict's threshold test found beyond noise? The paired test of the same difference: the
    generation the passing test looked at against generation 0, over questions, Holm-corrected with the run's
    other paired tests. ``significant`` is None where there is no such test (``note`` says why)."""

    generation: int | None = None
    mean_difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_holm: float | None = None
    significant: bool | None = None
    note: str | None = None


def significance(tests: list[PairedTest], generation: int, rising: bool) -> Significance:
    """Whether ``generation``'s paired test against generation 0 shows a change in the direction the verdict
    claims (``rising``: up): Holm p below ``ALPHA`` and a CI that does not reach 0."""
    test = next((t for t in tests if t.reference == GENERATION_0 and t.generation == generation), None)
    if test is None:
        return Significance(generation=generation, note=f"no paired test of generation {generation} against 0")
    found = Significance(
        generation=generation, mean_difference=test.mean_difference, ci_low=test.ci_low, ci_high=test.ci_high,
        p_holm=test.p_holm, note=test.note,
    )  # fmt: skip
    if test.p_holm is None or test.ci_low is None or test.ci_high is None:
        return found.model_copy(update={"note": test.note or "not tested"})
    beyond_zero = test.ci_low > 0 if rising else test.ci_high < 0
    return found.model_copy(update={"significant": bool(test.p_holm < ALPHA and beyond_zero)})
