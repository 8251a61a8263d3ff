"""Reports and verdicts over finished runs."""

from __future__ import annotations

from pathlib import Path

from traitloop.analysis import Report, RunVerdict, Thresholds, analyze_run, load_eval_sets, load_run, write_report
from traitloop.errors import UserError
from traitloop.sweep import sweep_status as sweep_status


def report(
    run_dirs: list[Path], output: Path | None = None, compare: bool = False, thresholds: Thresholds | None = None
) -> Report:
    """Write the HTML report (and plots, Parquet table) for one run, or a comparison of several."""
    if not run_dirs:
        raise UserError("report needs at least one run folder")
    runs = [load_run(folder) for folder in run_dirs]
    eval_sets = [results for folder in run_dirs for results in load_eval_sets(folder)]
    if output is None:
        output = Path("compare.html") if compare or len(runs) > 1 else Path(run_dirs[0]) / "report.html"
    return write_report(runs, Path(output), thresholds, eval_sets)


def verdict(run_dir: Path, thresholds: Thresholds | None = None, eval_set: str | None = None) -> RunVerdict:
    """Did the trait amplify in this run (on its main evaluation, or on ``eval_set``)? Every test, statistic
    and threshold behind the answer."""
    return analyze_run(load_run(run_dir, eval_set), thresholds)


def eval_set_verdicts(run_dir: Path, thresholds: Thresholds | None = None) -> list[RunVerdict]:
    """The run's verdict on each of its other eval sets (suites, contexts, ``traitloop eval`` question files)."""
    return [analyze_run(results, thresholds) for results in load_eval_sets(run_dir)]
