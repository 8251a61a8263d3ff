"""Statistics over runs: per-cycle CIs, amplification tests, noise floor, attractor fit, plots and the report."""

from traitloop.analysis._analyze import Comparison, RunVerdict, analyze_run, compare_runs, evaluated_generations  # noqa: I001
from traitloop.analysis._attractor import AttractorFit, fit_attractor
from traitloop.analysis._load import RunResults, load_eval_sets, load_run, load_runs
from traitloop.analysis._report import Report, verdict_of, write_report
from traitloop.analysis._stats import ScoreSummary, summarize_scores  # first: the loop needs it while importing
from traitloop.analysis._verdict import Thresholds

__all__ = [
    "AttractorFit",
    "Comparison",
    "Report",
    "RunResults",
    "RunVerdict",
    "ScoreSummary",
    "Thresholds",
    "analyze_run",
    "compare_runs",
    "evaluated_generations",
    "fit_attractor",
    "load_eval_sets",
    "load_run",
    "load_runs",
    "summarize_scores",
    "verdict_of",
    "write_report",
]
