"""Many runs at once: replicates (runs that differ only in their seed) and the cells of a grid over one or two
swept fields, each with how often its runs amplified and how far trait and coherence moved.

A cell holds every run with its values of the grid's axes (pooled over any other axis). Amplified counts use the
study's rule (``study_verdict``) with an exact Clopper-Pearson CI; ``amplified_significant`` counts the runs
whose paired test bears the change out. The change from generation 0 to a run's last generation is, for one
run, its paired mean difference with a bootstrap CI over questions, and for several, the mean of the runs'
differences with a Student-t interval across runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel
from scipy import stats

from traitloop.analysis._attractor import AttractorFit, fit_attractor
from traitloop.analysis._axes import axis_values, label_of
from traitloop.analysis._load import RunResults
from traitloop.analysis._paired import paired_test
from traitloop.analysis._run_verdict import RunVerdict
from traitloop.analysis._verdict import Interval

AMPLIFIED = "amplified"


class ReplicationGroup(BaseModel):
    """Runs identical but for their seed: how many amplified by the study's rule (with a 95% Clopper-Pearson CI
    on the share) and how many significantly, and their mean trend slope over cycles ≥ 1 (with a 95% t-interval
    across runs). ``note`` says why a value is missing."""

    setting: str
    runs: list[str]
    amplified: int
    amplified_significant: int = 0
    verdicts: list[str]
    amplified_share: float
    amplified_ci: tuple[float, float] | None
    trend_slopes: list[float | None]
    mean_trend_slope: Interval
    note: str | None = None


class GridCell(BaseModel):
    """One cell of the grid: the runs with these values of the grid's axes."""

    values: dict[str, Any]
    label: str
    runs: list[str]
    verdicts: list[str]
    amplified: int
    amplified_significant: int
    amplified_ci: tuple[float, float]
    trait_change: Interval
    coherence_change: Interval
    attractor: AttractorFit


def clopper_pearson(successes: int, trials: int) -> tuple[float, float]:
    interval = stats.binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="exact")
    return round(float(interval.low), 4), round(float(interval.high), 4)


def _amplified(verdicts: Sequence[RunVerdict]) -> tuple[int, int]:
    """(by the study's rule, and of those, significantly)."""
    return (
        sum(v.study_verdict == AMPLIFIED for v in verdicts),
        sum(v.study_verdict == AMPLIFIED and v.significance.significant is True for v in verdicts),
    )


def replication_group(verdicts: list[RunVerdict]) -> ReplicationGroup:
    """How consistently replicates amplified: the share (exact binomial CI) and the mean trend slope (t-interval);
    a single run has no replicates, and gets neither."""
    amplified, significant = _amplified(verdicts)
    slopes = [v.trend.slope for v in verdicts]
    group = ReplicationGroup(
        setting=verdicts[0].setting,
        runs=[v.run for v in verdicts],
        amplified=amplified,
        amplified_significant=significant,
        verdicts=[v.verdict for v in verdicts],
        amplified_share=round(amplified / len(verdicts), 4),
        amplified_ci=None,
        trend_slopes=slopes,
        mean_trend_slope=mean_with_t_interval([s for s in slopes if s is not None]),
    )
    if len(verdicts) < 2:
        group.note = "no replicates: one run with this config"
    else:
        group.amplified_ci = clopper_pearson(amplified, len(verdicts))
    return group


def mean_with_t_interval(values: list[float], what: str = "a trend (3+ self-trained cycles)") -> Interval:
    """Mean and 95% Student-t interval across runs; needs two values (a constant set has a point interval)."""
    if len(values) < 2:
        return Interval(estimate=None, note=f"needs 2 runs with {what}, has {len(values)}")
    array = np.array(values, dtype=float)
    mean, se = float(array.mean()), float(stats.sem(array))
    margin = float(stats.t.ppf(0.975, len(array) - 1)) * se
    return Interval(estimate=round(mean, 4), ci_low=round(mean - margin, 4), ci_high=round(mean + margin, 4))


def last_minus_first(run: RunResults, measure: str) -> Interval:
    """A run's last generation − generation 0 in ``measure``, paired over questions, with a bootstrap CI."""
    if 0 not in run.cycles or run.cycles[-1] == 0:
        return Interval(estimate=None, note="needs generation 0 and a later one")
    last = run.cycles[-1]
    test = paired_test(
        last, "generation 0", run.question_means(measure, last), run.question_means(measure, 0),
        run.config.evaluation.bootstrap_resamples, run.config.seed,
    )  # fmt: skip
    if test.mean_difference is None:
        return Interval(estimate=None, note=test.note)
    return Interval(estimate=test.mean_difference, ci_low=test.ci_low, ci_high=test.ci_high)


def pooled_change(changes: list[Interval]) -> Interval:
    """One run's change as it is; several runs' as the mean of their changes with a t-interval across runs."""
    found = [c for c in changes if c.estimate is not None]
    if len(changes) == 1:
        return changes[0]
    if len(found) < 2:
        return Interval(estimate=None, note=f"needs 2 runs with generation 0 and a later one, has {len(found)}")
    return mean_with_t_interval([c.estimate for c in found])


def ordered(values: list[Any]) -> list[Any]:
    """Distinct values, numbers in ascending order, anything else in the order first seen."""
    distinct = list(dict.fromkeys(values))
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in distinct)
    return sorted(distinct) if numeric else distinct


def grid_cells(runs: list[RunResults], verdicts: list[RunVerdict], axes: list[str]) -> list[GridCell]:
    """The grid over ``axes`` (one or two fields), row by row: one cell per combination some run has."""
    if not axes:
        return []
    values = [axis_values(run.config, axes) for run in runs]
    rows = ordered([v[axes[0]] for v in values])
    columns = ordered([v[axes[-1]] for v in values]) if len(axes) == 2 else [None]
    cells = []
    for row in rows:
        for column in columns:
            key = {axes[0]: row} | ({axes[1]: column} if len(axes) == 2 else {})
            members = [i for i, v in enumerate(values) if v == key]
            if members:
                cells.append(_cell(key, [runs[i] for i in members], [verdicts[i] for i in members]))
    return cells


def _cell(key: dict[str, Any], runs: list[RunResults], verdicts: list[RunVerdict]) -> GridCell:
    amplified, significant = _amplified(verdicts)
    first = runs[0].config
    return GridCell(
        values=key,
        label=label_of(key),
        runs=[v.run for v in verdicts],
        verdicts=[v.verdict for v in verdicts],
        amplified=amplified,
        amplified_significant=significant,
        amplified_ci=clopper_pearson(amplified, len(verdicts)),
        trait_change=pooled_change([last_minus_first(run, "trait") for run in runs]),
        coherence_change=pooled_change([last_minus_first(run, "coherence") for run in runs]),
        attractor=fit_attractor(
            [run.question_matrix("trait") for run in runs], first.evaluation.bootstrap_resamples, first.seed
        ),
    )
