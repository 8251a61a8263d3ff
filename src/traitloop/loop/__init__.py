"""The cycle engine and the run directory it writes (``open_run_folder`` reads one back)."""

from traitloop.loop._engine import run_experiment
from traitloop.loop._evaluate import EvalRecord
from traitloop.loop._rundir import RunFolder, is_run_folder, open_run_folder

__all__ = ["EvalRecord", "RunFolder", "is_run_folder", "open_run_folder", "run_experiment"]
