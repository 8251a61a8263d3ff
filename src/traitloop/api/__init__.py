"""The Python API, mirroring the CLI: ``run``, ``plan``, ``export``, ``status``, ``evaluate``, ``judge_file``,
``report``, ``verdict``, ``compare``, ``sweep``, ``sweep_status``, ``calibrate``, ``list_models``, ``pull_model``,
``new_trait``, ``validate_trait``, ``list_traits``, ``new_pool``, ``import_pool``; and ``load_config`` /
``parse_config``, which check a config as a run does. One module per concern; the names are all here.

May import: config, io, errors, _atomic, _progress, stats, rundir, traits, models, judge, generate, measure, methods,
loop, author, analysis, sweep.
"""

from traitloop.api._analysis import compare, eval_set_verdicts, report, verdict
from traitloop.api._authoring import import_pool, list_traits, new_pool, new_trait, validate_trait
from traitloop.api._experiments import (
    calibrate,
    evaluate,
    list_models,
    load_config,
    parse_config,
    parse_generations,
    pull_model,
    run,
    status,
    sweep,
    sweep_status,
)
from traitloop.api._judging import judge_agreement, judge_file
from traitloop.loop import export_generation as export
from traitloop.sweep import plan_runs as plan

__all__ = [
    "calibrate",
    "compare",
    "eval_set_verdicts",
    "evaluate",
    "export",
    "import_pool",
    "judge_agreement",
    "judge_file",
    "list_models",
    "list_traits",
    "load_config",
    "new_pool",
    "new_trait",
    "parse_config",
    "parse_generations",
    "plan",
    "pull_model",
    "report",
    "run",
    "status",
    "sweep",
    "sweep_status",
    "validate_trait",
    "verdict",
]
