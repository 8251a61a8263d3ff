"""The cycle engine and the run directory it writes (``open_run_folder`` reads one back).

``run_experiment`` is imported on first use: the methods, which the engine imports, read the run directory's
layout from this package, and must be able to do so without importing the engine.
"""

from typing import Any

from traitloop.loop._evaluate import EvalRecord
from traitloop.loop._rundir import RunFolder, is_run_folder, open_run_folder

__all__ = ["EvalRecord", "RunFolder", "is_run_folder", "open_run_folder", "run_experiment"]


def __getattr__(name: str) -> Any:
    if name == "run_experiment":
        from traitloop.loop._engine import run_experiment

        return run_experiment
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
