"""Statistics over finished run folders: per-cycle CIs, paired and amplification tests, noise floor, attractor
fit, two runs tested against each other, grids over the fields a sweep varies, plots and the HTML report. It
reads runs through ``traitloop.rundir`` and never runs a model.

May import: config, io, errors, _atomic, stats, rundir.
"""

from traitloop.analysis._analyze import Comparison, compare_runs
from traitloop.analysis._attractor import AttractorFit, fit_attractor
from traitloop.analysis._axes import swept_fields
from traitloop.analysis._between import RunsCompared, compare_two_runs
from traitloop.analysis._grid import GridCell
from traitloop.analysis._load import RunResults, load_eval_sets, load_run, load_runs
from traitloop.analysis._rate import DEFAULT_RATE, parse_rate
from traitloop.analysis._report import Report, verdict_of, write_report
from traitloop.analysis._run_verdict import RunVerdict, analyze_run, evaluated_generations
from traitloop.analysis._verdict import Thresholds

__all__ = [
    "DEFAULT_RATE",
    "AttractorFit",
    "Comparison",
    "GridCell",
    "Report",
    "RunResults",
    "RunVerdict",
    "RunsCompared",
    "Thresholds",
    "analyze_run",
    "compare_runs",
    "compare_two_runs",
    "evaluated_generations",
    "fit_attractor",
    "load_eval_sets",
    "load_run",
    "load_runs",
    "parse_rate",
    "swept_fields",
    "verdict_of",
    "write_report",
]
