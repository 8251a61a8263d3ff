"""Statistics over finished run folders: per-cycle CIs, paired and amplification tests, noise floor, attractor
fit, plots and the HTML report. It reads runs through ``traitloop.rundir`` and never runs a model.

May import: config, io, errors, _atomic, stats, rundir.
"""

from traitloop.analysis._analyze import Comparison, RunVerdict, analyze_run, compare_runs, evaluated_generations
from traitloop.analysis._attractor import AttractorFit, fit_attractor
from traitloop.analysis._load import RunResults, load_eval_sets, load_run, load_runs
from traitloop.analysis._report import Report, verdict_of, write_report
from traitloop.analysis._verdict import Thresholds

__all__ = [
    "AttractorFit",
    "Comparison",
    "Report",
    "RunResults",
    "RunVerdict",
    "Thresholds",
    "analyze_run",
    "compare_runs",
    "evaluated_generations",
    "fit_attractor",
    "load_eval_sets",
    "load_run",
    "load_runs",
    "verdict_of",
    "write_report",
]
