"""Reports, verdicts and comparisons over finished runs."""

from __future__ import annotations

from pathlib import Path

from traitloop.analysis import (
    Report,
    RunsCompared,
    RunVerdict,
    Thresholds,
    analyze_run,
    compare_two_runs,
    load_eval_sets,
    load_run,
    write_report,
)
from traitloop.errors import UserError
from traitloop.rundir import parse_generations
from traitloop.sweep import is_sweep_folder, report_folders


def report(
    run_dirs: list[Path],
    output: Path | None = None,
    compare: bool = False,
    thresholds: Thresholds | None = None,
    axes: list[str] | None = None,
) -> Report:
    """Write the HTML report (and plots, Parquet tables) for one run, several, or a sweep folder's runs (report.html
    and summary.parquet in it), laid out by the fields they vary (``axes``: the grid's one or two; default the first
    two, a sweep's in its grid's order)."""
    if not run_dirs:
        raise UserError("report needs at least one run folder")
    folders, order = report_folders(run_dirs)
    runs = [load_run(folder) for folder in folders]
    eval_sets = [results for folder in folders for results in load_eval_sets(folder)]
    alone = Path(run_dirs[0]) if len(run_dirs) == 1 else None
    table = alone / "summary.parquet" if alone and is_sweep_folder(alone) and output is None else None
    if output is None:
        output = alone / "report.html" if alone and (table or not compare) else Path("compare.html")
    return write_report(runs, Path(output), thresholds, eval_sets, order, axes, table)


def verdict(run_dir: Path, thresholds: Thresholds | None = None, eval_set: str | None = None) -> RunVerdict:
    """Did the trait amplify in this run (on its main evaluation, or on ``eval_set``)? Every test, statistic
    and threshold behind the answer; on the main evaluation, with the verdict on each other eval set."""
    result = analyze_run(load_run(run_dir, eval_set), thresholds)
    return result if eval_set else result.model_copy(update={"eval_sets": eval_set_verdicts(run_dir, thresholds)})


def eval_set_verdicts(run_dir: Path, thresholds: Thresholds | None = None) -> list[RunVerdict]:
    """The run's verdict on each of its other eval sets (suites, contexts, ``traitloop eval`` question files)."""
    return [analyze_run(results, thresholds) for results in load_eval_sets(run_dir)]


def compare(
    run_a: Path, run_b: Path, generations: str | list[int | None] | None = None, eval_set: str | None = None
) -> RunsCompared:
    """Run A against run B at each generation both have (or ``generations``, e.g. ``0,2,4``), paired over the same
    questions (on ``eval_set``, if given); a UserError where they asked different ones."""
    chosen = parse_generations(generations) if isinstance(generations, str) else generations
    return compare_two_runs(load_run(run_a, eval_set), load_run(run_b, eval_set), chosen)
