"""The comparison of many runs: each run's verdict, replication across seeds, the grid over the fields the runs
vary, per-setting pools, and (for exactly two runs) their paired comparison; every statistic a report shows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel

from traitloop.analysis._attractor import AttractorFit, fit_attractor
from traitloop.analysis._axes import choose_grid_axes, swept_fields
from traitloop.analysis._between import RunsCompared, compare_two_runs
from traitloop.analysis._grid import GridCell, ReplicationGroup, grid_cells, replication_group
from traitloop.analysis._load import RunResults, replicate_key
from traitloop.analysis._run_verdict import (
    VERDICT_SCHEMA_VERSION,
    Correlation,
    RunVerdict,
    Tradeoff,
    analyze_run,
    projection_vs_judge,
    tradeoff,
)
from traitloop.analysis._verdict import Thresholds
from traitloop.errors import UserError


class SettingSummary(BaseModel):
    """Everything pooled across the runs of one setting (the runs' values of every swept field; without any,
    trait, method and regime): the attractor fit per cell, not over the whole grid."""

    setting: str
    runs: list[str]
    attractor: AttractorFit
    tradeoff: Tradeoff


class Comparison(BaseModel):
    """``axes``: the fields the runs vary (not their seed); ``grid_axes``: the (at most two) the grid is laid out
    by; ``between``: run A against run B, question by question, when exactly two runs asked the same questions
    (``between_note`` says why not, otherwise)."""

    schema_version: int = VERDICT_SCHEMA_VERSION
    thresholds: Thresholds
    runs: list[RunVerdict]
    replication: list[ReplicationGroup]
    settings: list[SettingSummary]
    projection_vs_judge: Correlation
    prompt_projection_vs_judge: Correlation
    eval_sets: list[RunVerdict] = []  # each run's verdict on its other eval sets (suites, contexts, files)
    axes: list[str] = []
    grid_axes: list[str] = []
    grid: list[GridCell] = []
    between: RunsCompared | None = None
    between_note: str | None = None


def compare_runs(
    runs: list[RunResults],
    thresholds: Thresholds | None = None,
    eval_sets: Sequence[RunResults] = (),
    axes_order: Sequence[str] = (),
    grid_axes: Sequence[str] | None = None,
) -> Comparison:
    """Verdicts for every run, replication across seeds, the grid over the fields the runs vary (``grid_axes``,
    else the first two, ``axes_order`` first), per-setting pooled attractor and tradeoff (all on the runs' main
    evaluations); and a verdict for each of ``eval_sets``, the runs read on other eval sets."""
    thresholds = thresholds or Thresholds()
    axes = swept_fields([run.config for run in runs], axes_order)
    chosen = choose_grid_axes(axes, grid_axes)
    verdicts = [analyze_run(run, thresholds, axes) for run in runs]
    replicates: dict[str, list[int]] = defaultdict(list)
    settings: dict[str, list[int]] = defaultdict(list)
    for i, run in enumerate(runs):
        replicates[replicate_key(run)].append(i)
        settings[verdicts[i].setting].append(i)
    between, between_note = _between(runs) if len(runs) == 2 else (None, None)
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
        eval_sets=[analyze_run(run, thresholds, axes) for run in eval_sets],
        axes=axes,
        grid_axes=chosen,
        grid=grid_cells(runs, verdicts, chosen),
        between=between,
        between_note=between_note,
    )


def _between(runs: list[RunResults]) -> tuple[RunsCompared | None, str | None]:
    """Two runs compared question by question; where they cannot be (other questions), why not."""
    try:
        return compare_two_runs(*runs), None
    except UserError as error:
        return None, str(error)


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
