"""A run's verdict, and the comparison of many runs: every statistic a report shows, as versioned data."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from pydantic import BaseModel
from scipy import stats

from traitloop.analysis._attractor import AttractorFit, fit_attractor
from traitloop.analysis._load import RunResults, cycle_rows, replicate_key, setting_of
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

VERDICT_SCHEMA_VERSION = 1


class Tradeoff(BaseModel):
    """Does trait change go with coherence change? Pearson r over generations, both measured from the base model."""

    trait_change: list[float]
    coherence_change: list[float]
    pearson_r: float | None
    p_value: float | None


class RunVerdict(BaseModel):
    schema_version: int = VERDICT_SCHEMA_VERSION
    run: str
    folder: str
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


class ReplicationGroup(BaseModel):
    """Runs identical but for their seed, and how many of them amplified."""

    setting: str
    runs: list[str]
    amplified: int
    verdicts: list[str]


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


def tradeoff(trait_change: list[float], coherence_change: list[float]) -> Tradeoff:
    """Pearson correlation of paired changes; none with fewer than 3 points or a constant side."""
    r = p = None
    if len(trait_change) >= 3 and np.ptp(trait_change) > 0 and np.ptp(coherence_change) > 0:
        result = stats.pearsonr(trait_change, coherence_change)
        r, p = round(float(result.statistic), 4), round(float(result.pvalue), 4)
    return Tradeoff(trait_change=trait_change, coherence_change=coherence_change, pearson_r=r, p_value=p)


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
    rows = cycle_rows(run)
    generations = [r for r in rows[1:] if r["trait_mean"] is not None]
    means = [r["trait_mean"] for r in generations]
    steps = noise_floor_steps(means, [r["trait_se"] for r in generations])
    resamples, seed = run.config.evaluation.bootstrap_resamples, run.config.seed
    matrix = run.question_matrix("trait")
    amplification, decay = amplification_tests(means, thresholds), decay_tests(means, thresholds)
    return RunVerdict(
        run=run.name,
        folder=str(run.folder),
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
    )


def compare_runs(runs: list[RunResults], thresholds: Thresholds | None = None) -> Comparison:
    """Verdicts for every run, replication across seeds, and per-setting pooled attractor and tradeoff."""
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
        replication=[
            ReplicationGroup(
                setting=verdicts[group[0]].setting,
                runs=[verdicts[i].run for i in group],
                amplified=sum(verdicts[i].verdict == "amplified" for i in group),
                verdicts=[verdicts[i].verdict for i in group],
            )
            for group in replicates.values()
        ],
        settings=[
            _pool_setting(name, [runs[i] for i in group], [verdicts[i] for i in group])
            for name, group in settings.items()
        ],
    )


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
