"""The cycle engine: one experiment's seed cycle, self-training cycles and evaluations, written to its run
folder through ``traitloop.rundir``; a run planned before any work (``plan_run``: every stage's data and peak
memory, and whether it fits the GPU); a finished generation exported as a standalone folder.

``run_experiment``, ``evaluate_run``, ``check_config`` and the planning are imported on first use, so that
importing the package does not wait for the engine's and the registries' imports (torch, transformers, TRL).

May import: config, io, errors, _atomic, _progress, stats, rundir, traits, models, judge, generate, measure,
methods.
"""

from importlib import import_module
from typing import Any

from traitloop.loop._evals import EvalSet, question_sets, suite_questions
from traitloop.loop._progress import quiet_libraries

_LAZY = {
    "run_experiment": "_engine",
    "evaluate_run": "_engine",
    "check_config": "_check",
    "export_generation": "_export",
    **dict.fromkeys(("Plan", "plan_run", "largest_micro_batch", "check_memory", "parse_memory"), "_plan"),
    "StagePlan": "_plan_stages",
    "MemoryItem": "_memory",
}

__all__ = [
    "EvalSet",
    "MemoryItem",
    "Plan",
    "StagePlan",
    "check_config",
    "check_memory",
    "evaluate_run",
    "export_generation",
    "largest_micro_batch",
    "parse_memory",
    "plan_run",
    "question_sets",
    "quiet_libraries",
    "run_experiment",
    "suite_questions",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
