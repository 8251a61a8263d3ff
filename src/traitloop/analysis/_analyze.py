"""A run's verdict, and the comparison of many runs: every statistic a report shows, as versioned data."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel
from scipy import stats

from traitloop.analysis._attractor import AttractorFit, fit_attractor
from traitloop.analysis._load import RunResults, cycle_rows, replicate_key, setting_of
from traitloop.analysis._paired import PairedTest, paired_tests
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
    noise_floor_steps,
    share_beyond_floor,
    trend_after_seed,
)

VERDICT_SCHEMA_VERSION = 3  # 2: paired tests, thresholded rate, volumes, replication CIs, projections; 3: eval sets


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
    schema_version: int = VERDICT_SCHEMA_VERSION
    run: str
    folder: str
    eval_set: str | None = None  # None: the run's main evaluation; else the suite, context or question file
    setting: str
    seed: int
    git_hash: str | None
    thresholds: Thresholds
    verdict: str
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


class ReplicationGroup(BaseModel):
    """Runs identical but for their seed: how many amplified (with a 95% Clopper-Pearson CI on the share), and
    their mean trend slope over cycles ≥ 1 (with a 95% t-interval across runs). ``note`` says why a value is
    missing."""

    setting: str
    runs: list[str]
    amplified: int
    verdicts: list[str]
    amplified_share: float
    amplified_ci: tuple[float, float] | None
    trend_slopes: list[float | None]
    mean_trend_slope: Interval
    note: str | None = None


class SettingSummary(BaseModel):
    """Everything pooled across the runs of one setting (trait, method, regime)."""

    setting: str
    runs: list[str]
    attractor: AttractorFit
    tradeoff: Tradeoff


class Comparison(BaseModel):
    schema_version: int = VERDICT_SCHEMA_VERSION
    thresholds: Thresholds
    runs: list[RunVerdict]
    replication: list[ReplicationGroup]
    settings: list[SettingSummary]
    projection_vs_judge: Correlation
    prompt_projection_vs_judge: Correlation
    eval_sets: list[RunVerdict] = []  # each run's verdict on its other eval sets (suites, contexts, files)


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


def analyze_run(run: RunResults, thresholds: Thresholds | None = None) -> RunVerdict:
    """The verdict on one run: tests, noise floor, idempotence, trend, attractor fit and coherence tradeoff."""
    thresholds = thresholds or Thresholds()
    rows = cycle_rows(run, thresholds)
    generations = [r for r in rows[1:] if r["trait_mean"] is not None]
    means = [r["trait_mean"] for r in generations]
    steps = noise_floor_steps(means, [r["trait_se"] for r in generations])
    resamples, seed = run.config.evaluation.bootstrap_resamples, run.config.seed
    matrix = run.question_matrix("trait")
    amplification, decay = amplification_tests(means, thresholds), decay_tests(means, thresholds)
    return RunVerdict(
        run=run.name,
        folder=str(run.folder),
        eval_set=run.eval_set,
        setting=setting_of(run),
        seed=run.config.seed,
        git_hash=run.manifest.get("environment", {}).get("git_hash"),
        thresholds=thresholds,
        verdict=label(amplification, decay),
        cycles=rows,
        amplification_tests=amplification,
        decay_tests=decay,
        noise_floor=steps,
        share_beyond_floor=share_beyond_floor(steps),
        idempotence=idempotence_index(matrix, resamples, seed),
        trend=trend_after_seed(means),
        attractor=fit_attractor([matrix], resamples, seed),
        tradeoff=tradeoff(*_changes_from_base(rows)),
        paired_tests=paired_tests(
            {cycle: run.question_means("trait", cycle) for cycle in [None, *run.cycles]}, resamples, seed
        ),
        projection_vs_judge=projection_vs_judge(rows, "projection"),
        prompt_projection_vs_judge=projection_vs_judge(rows, "prompt_projection"),
    )


def compare_runs(
    runs: list[RunResults], thresholds: Thresholds | None = None, eval_sets: Sequence[RunResults] = ()
) -> Comparison:
    """Verdicts for every run, replication across seeds, and per-setting pooled attractor and tradeoff (all on
    the runs' main evaluations); and a verdict for each of ``eval_sets``, the runs read on other eval sets."""
    thresholds = thresholds or Thresholds()
    verdicts = [analyze_run(run, thresholds) for run in runs]
    replicates: dict[str, list[int]] = defaultdict(list)
    settings: dict[str, list[int]] = defaultdict(list)
    for i, run in enumerate(runs):
        replicates[replicate_key(run)].append(i)
        settings[setting_of(run)].append(i)
    return Comparison(
        thresholds=thresholds,
        runs=verdicts,
        replication=[replication_group([verdicts[i] for i in group]) for group in replicates.values()],
        settings=[
            _pool_setting(name, [runs[i] for i in group], [verdicts[i] for i in group])
            for name, group in settings.items()
        ],
        projection_vs_judge=projection_vs_judge([r for v in verdicts for r in v.cycles], "projection"),
        prompt_projection_vs_judge=projection_vs_judge([r for v in verdicts for r in v.cycles], "prompt_projection"),
        eval_sets=[analyze_run(run, thresholds) for run in eval_sets],
    )


def replication_group(verdicts: list[RunVerdict]) -> ReplicationGroup:
    """How consistently replicates amplified: the share (exact binomial CI) and the mean trend slope (t-interval);
    a single run has no replicates, and gets neither."""
    amplified = sum(v.verdict == "amplified" for v in verdicts)
    slopes = [v.trend.slope for v in verdicts]
    group = ReplicationGroup(
        setting=verdicts[0].setting,
        runs=[v.run for v in verdicts],
        amplified=amplified,
        verdicts=[v.verdict for v in verdicts],
        amplified_share=round(amplified / len(verdicts), 4),
        amplified_ci=None,
        trend_slopes=slopes,
        mean_trend_slope=mean_with_t_interval([s for s in slopes if s is not None]),
    )
    if len(verdicts) < 2:
        group.note = "no replicates: one run with this config"
    else:
        interval = stats.binomtest(amplified, len(verdicts)).proportion_ci(confidence_level=0.95)
        group.amplified_ci = (round(float(interval.low), 4), round(float(interval.high), 4))
    return group


def mean_with_t_interval(values: list[float]) -> Interval:
    """Mean and 95% Student-t interval across runs; needs two values (a constant set has a point interval)."""
    if len(values) < 2:
        return Interval(estimate=None, note=f"needs 2 runs with a trend (3+ self-trained cycles), has {len(values)}")
    array = np.array(values, dtype=float)
    mean, se = float(array.mean()), float(stats.sem(array))
    margin = float(stats.t.ppf(0.975, len(array) - 1)) * se
    return Interval(estimate=round(mean, 4), ci_low=round(mean - margin, 4), ci_high=round(mean + margin, 4))


def _pool_setting(name: str, runs: list[RunResults], verdicts: list[RunVerdict]) -> SettingSummary:
    first = runs[0].config
    return SettingSummary(
        setting=name,
        runs=[v.run for v in verdicts],
        attractor=fit_attractor(
            [run.question_matrix("trait") for run in runs], first.evaluation.bootstrap_resamples, first.seed
        ),
        tradeoff=tradeoff(
            [c for v in verdicts for c in v.tradeoff.trait_change],
            [c for v in verdicts for c in v.tradeoff.coherence_change],
        ),
    )
