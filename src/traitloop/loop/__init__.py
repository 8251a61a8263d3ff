"""The cycle engine and the run directory it writes (``open_run_folder`` reads one back).

``run_experiment`` and ``evaluate_run`` are imported on first use: the methods, which the
engine imports, read the run directory's layout from this package, and the command line checks a run
folder's lock through it, neither of which should wait for the engine's imports (torch, transformers).
"""

from importlib import import_module
from typing import Any

from traitloop.loop._rundir import EvalRecord, RunFolder, is_run_folder, open_run_folder

_LAZY = {"run_experiment": "_engine", "evaluate_run": "_engine"}

__all__ = ["EvalRecord", "RunFolder", "evaluate_run", "is_run_folder", "open_run_folder", "run_experiment"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
