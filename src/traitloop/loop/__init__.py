"""The cycle engine: one experiment's seed cycle, self-training cycles and evaluations, written to its run
folder through ``traitloop.rundir``.

``run_experiment``, ``evaluate_run`` and ``check_config`` are imported on first use, so that importing the
package does not wait for the engine's and the registries' imports (torch, transformers, TRL).

May import: config, io, errors, _atomic, _progress, stats, rundir, traits, models, judge, generate, measure,
methods.
"""

from importlib import import_module
from typing import Any

from traitloop.loop._evals import EvalSet, question_sets, suite_questions
from traitloop.loop._progress import quiet_libraries

_LAZY = {"run_experiment": "_engine", "evaluate_run": "_engine", "check_config": "_check"}

__all__ = [
    "EvalSet",
    "check_config",
    "evaluate_run",
    "question_sets",
    "quiet_libraries",
    "run_experiment",
    "suite_questions",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
