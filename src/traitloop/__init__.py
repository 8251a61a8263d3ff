"""traitloop: does training a model on its own outputs amplify a behavioural trait?

The API is imported on first use (``traitloop.run`` and the rest load torch and transformers, seconds), so
``import traitloop`` and the command line's quick answers stay quick.
"""

from importlib import import_module
from typing import Any

_FROM = {
    "ExperimentConfig": "traitloop.config",
    "UserError": "traitloop.errors",
    "load_runs": "traitloop.analysis",
    **dict.fromkeys(
        ("compare", "eval_set_verdicts", "evaluate", "judge_agreement", "judge_file", "list_models", "load_config",
         "pull_model", "report", "run", "status", "verdict"),
        "traitloop.api",
    ),
}  # fmt: skip

__all__ = sorted(_FROM)


def __getattr__(name: str) -> Any:
    if name not in _FROM:
        raise AttributeError(f"module 'traitloop' has no attribute {name!r}")
    return getattr(import_module(_FROM[name]), name)


def __dir__() -> list[str]:
    return __all__
