"""The cycle engine and the run directory it writes."""

from traitloop.loop._engine import run_experiment
from traitloop.loop._evaluate import EvalRecord

__all__ = ["EvalRecord", "run_experiment"]
