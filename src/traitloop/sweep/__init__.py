"""Sweeps: a grid over experiment settings, expanded into named runs and executed locally or on Ray (or planned
before any work), and the calibration of seeding; a sweep runs each experiment through ``traitloop.loop`` and
reads it back through ``traitloop.rundir``.

May import: config, io, errors, _atomic, _progress, stats, rundir, traits, models, judge, generate, measure, methods,
loop, analysis.
"""

from traitloop.sweep._calibrate import Calibration, Probe, calibrate, search_seed_examples
from traitloop.sweep._executors import RunOutcome
from traitloop.sweep._plan import is_sweep, plan_runs
from traitloop.sweep._run import is_finished, is_sweep_folder, report_folders, run_sweep, sweep_runs, sweep_status
from traitloop.sweep._spec import PlannedRun, RayOptions, Sweep, SweepConfig, load_sweep, run_name

__all__ = [
    "Calibration",
    "Probe",
    "calibrate",
    "search_seed_examples",
    "PlannedRun",
    "RayOptions",
    "RunOutcome",
    "Sweep",
    "SweepConfig",
    "is_finished",
    "is_sweep_folder",
    "is_sweep",
    "load_sweep",
    "plan_runs",
    "run_name",
    "report_folders",
    "run_sweep",
    "sweep_runs",
    "sweep_status",
]
