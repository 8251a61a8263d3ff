"""The cycle engine and the run directory it writes (``open_run_folder`` reads one back).

``run_experiment`` and ``evaluate_run`` are imported on first use: the methods, which the engine imports, read
the run directory's layout from this package, and must be able to do so without importing the engine.
"""

from typing import Any

from traitloop.loop._evaluate import EvalRecord
from traitloop.loop._rundir import RunFolder, is_run_folder, open_run_folder

__all__ = ["EvalRecord", "RunFolder", "evaluate_run", "is_run_folder", "open_run_folder", "run_experiment"]


def __getattr__(name: str) -> Any:
    if name in ("run_experiment", "evaluate_run"):
        from traitloop.loop import _engine

        return getattr(_engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
