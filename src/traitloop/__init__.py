"""traitloop: does training a model on its own outputs amplify a behavioural trait?"""

from traitloop.analysis import load_runs
from traitloop.api import evaluate, judge_agreement, judge_file, list_models, pull_model, report, run, status, verdict
from traitloop.config import ExperimentConfig, load_config
from traitloop.errors import UserError

__all__ = [
    "evaluate",
    "ExperimentConfig",
    "UserError",
    "judge_agreement",
    "judge_file",
    "list_models",
    "load_config",
    "load_runs",
    "pull_model",
    "report",
    "run",
    "status",
    "verdict",
]
