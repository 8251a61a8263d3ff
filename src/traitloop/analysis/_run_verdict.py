"""One run's verdict: every statistic a report shows about it, as versioned data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel
from scipy import stats

from traitloop.analysis._attractor import AttractorFit, fit_attractor
from traitloop.analysis._axes import axis_values, setting_of
from traitloop.analysis._load import RunResults, cycle_rows
from traitloop.analysis._paired import PairedTest, Significance, paired_tests
from traitloop.analysis._verdict import (
    Interval,
    Step,
    Test,
    Thresholds,
    Trend,
    amplification_tests,
    decay_tests,
    idempotence_index,
    label,
    noise_aware_label,
    noise_floor_steps,
    share_beyond_floor,
    trend_after_seed,
)

# 2: paired tests, thresholded rate, volumes, replication CIs, projections; 3: eval sets; 4: study_verdict and
# significance beside a noise-aware verdict, the rate as a rule, every eval set's verdict in the run's
VERDICT_SCHEMA_VERSION = 4


class Correlation(BaseModel):
    """Pearson r between two measures over generations (one point per generation), with its p-value; ``note``
    says why r is missing."""

    n: int
    pearson_r: float | None
    p_value: float | None
    note: str | None = None


class Tradeoff(BaseModel):
    """Does trait change go with coherence change? Pearson r over generations, both measured from the base model."""

    trait_change: list[float]
    coherence_change: list[float]
    pearson_r: float | None
    p_value: float | None
    note: str | None = None


class RunVerdict(BaseModel):
    """``verdict`` is the study's label (``study_verdict``: amplified, decayed, stable, too few cycles), with
    ", not significant" added where its paired test does not bear the change out (``significance``)."""

    schema_version: int = VERDICT_SCHEMA_VERSION
    run: str
    folder: str
    eval_set: str | None = None  # None: the run's main evaluation; else the suite, context or question file
    setting: str
    values: dict[str, Any] = {}  # in a comparison, the run's value of each field the runs vary
    seed: int
    git_hash: str | None
    thresholds: Thresholds
    verdict: str
    study_verdict: str
    significance: Significance
    cycles: list[dict[str, Any]]
    amplification_tests: list[Test]
    decay_tests: list[Test]
    noise_floor: list[Step]
    share_beyond_floor: float | None
    idempotence: Interval
    trend: Trend
    attractor: AttractorFit
    tradeoff: Tradeoff
    paired_tests: list[PairedTest]
    projection_vs_judge: Correlation
    prompt_projection_vs_judge: Correlation
    eval_sets: list[RunVerdict] = []  # the run's verdicts on its other eval sets (``traitloop verdict --json``)


def evaluated_generations(verdict: RunVerdict) -> str:
    """The generations a verdict rests on, e.g. ``base, 0, 3``: those with answers (the base model's row is
    always there, but an eval set may not have asked it)."""
    return ", ".join("base" if r["cycle"] is None else str(r["cycle"]) for r in verdict.cycles if r["n_answers"])


def correlation(x: list[float | None], y: list[float | None]) -> Correlation:
    """Pearson correlation over the points where both values exist; none with fewer than 3 or a constant side."""
    pairs = [(a, b) for a, b in zip(x, y, strict=True) if a is not None and b is not None]
    if len(pairs) < 3:
        return Correlation(
            n=len(pairs), pearson_r=None, p_value=None, note=f"needs 3 points with both, has {len(pairs)}"
        )
    a, b = (np.array(side, dtype=float) for side in zip(*pairs, strict=True))
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return Correlation(n=len(pairs), pearson_r=None, p_value=None, note="a constant side")
    result = stats.pearsonr(a, b)
    return Correlation(
        n=len(pairs), pearson_r=round(float(result.statistic), 4), p_value=round(float(result.pvalue), 4)
    )


def tradeoff(trait_change: list[float], coherence_change: list[float]) -> Tradeoff:
    """Pearson correlation of paired changes; none with fewer than 3 points or a constant side."""
    fit = correlation(list(trait_change), list(coherence_change))
    return Tradeoff(
        trait_change=trait_change,
        coherence_change=coherence_change,
        pearson_r=fit.pearson_r,
        p_value=fit.p_value,
        note=fit.note,
    )


def projection_vs_judge(rows: list[dict[str, Any]], projection: str) -> Correlation:
    """The judge's trait mean against a persona-direction projection's mean, one point per generation row."""
    return correlation([r[f"{projection}_mean"] for r in rows], [r["trait_mean"] for r in rows])


def _changes_from_base(rows: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    base, generations = (
        rows[0],
        [r for r in rows[1:] if r["trait_mean"] is not None and r["coherence_mean"] is not None],
    )
    if base["trait_mean"] is None or base["coherence_mean"] is None:
        return [], []
    return (
        [round(r["trait_mean"] - base["trait_mean"], 4) for r in generations],
        [round(r["coherence_mean"] - base["coherence_mean"], 4) for r in generations],
    )


def analyze_run(
    run: RunResults, thresholds: Thresholds | None = None, axes: Sequence[str] = ()
) -> RunVerdict:
    """The verdict on one run: tests, noise floor, idempotence, trend, attractor fit and coherence tradeoff.
    ``axes``: the fields the runs compared with it vary, which label it (else trait, method and regime)."""
    thresholds = thresholds or Thresholds()
    rows = cycle_rows(run, thresholds)
    generations = [r for r in rows[1:] if r["trait_mean"] is not None]
    means = [r["trait_mean"] for r in generations]
    steps = noise_floor_steps(means, [r["trait_se"] for r in generations])
    resamples, seed = run.config.evaluation.bootstrap_resamples, run.config.seed
    matrix = run.question_matrix("trait")
    amplification, decay = amplification_tests(means, thresholds), decay_tests(means, thresholds)
    tests = paired_tests({cycle: run.question_means("trait", cycle) for cycle in [None, *run.cycles]}, resamples, seed)
    study = label(amplification, decay)
    verdict, significance = noise_aware_label(
        study, amplification, [r["cycle"] for r in generations], tests, means, thresholds
    )
    return RunVerdict(
        run=run.name,
        folder=str(run.folder),
        eval_set=run.eval_set,
        setting=setting_of(run.config, axes),
        values=axis_values(run.config, axes),
        seed=run.config.seed,
        git_hash=", ".join(run.git_hashes) or None,
        thresholds=thresholds,
        verdict=verdict,
        study_verdict=study,
        significance=significance,
        cycles=rows,
        amplification_tests=amplification,
        decay_tests=decay,
        noise_floor=steps,
        share_beyond_floor=share_beyond_floor(steps),
        idempotence=idempotence_index(matrix, resamples, seed),
        trend=trend_after_seed(means),
        attractor=fit_attractor([matrix], resamples, seed),
        tradeoff=tradeoff(*_changes_from_base(rows)),
        paired_tests=tests,
        projection_vs_judge=projection_vs_judge(rows, "projection"),
        prompt_projection_vs_judge=projection_vs_judge(rows, "prompt_projection"),
    )
