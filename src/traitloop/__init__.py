"""traitloop: does training a model on its own outputs amplify a behavioural trait?"""

from traitloop.api import judge_agreement, judge_file, list_models, pull_model, run, status
from traitloop.config import ExperimentConfig, load_config
from traitloop.errors import UserError

__all__ = [
    "ExperimentConfig",
    "UserError",
    "judge_agreement",
    "judge_file",
    "list_models",
    "load_config",
    "pull_model",
    "run",
    "status",
]
