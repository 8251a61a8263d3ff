"""A config checked against the registries: its method, its judges' kinds and its generation backend.

The config package checks every field and what cannot work together whatever the method; which method, judge
kind and backend a name means, and which settings each accepts, only their registries know. Every run passes
through here before any work, and so does every config a user hands in (``traitloop run``, sweeps, the API).
"""

from __future__ import annotations

from traitloop.config import ExperimentConfig, config_error
from traitloop.generate import check_backend
from traitloop.judge import check_judge_spec
from traitloop.methods import check_method


def check_config(config: ExperimentConfig, source: str = "config") -> ExperimentConfig:
    """``config`` itself once its method, judges and backend accept it (a method may fill in its defaults, as
    DPO's learning rate); else a ``UserError`` naming each problem, as the config's own errors do."""
    problems = []
    for where, check in (
        ("", lambda: check_method(config)),
        ("judge.trait: ", lambda: check_judge_spec(config.judge.trait)),
        ("judge.coherence: ", lambda: check_judge_spec(config.judge.coherence)),
        ("generation: ", lambda: check_backend(config)),
    ):
        try:
            check()
        except ValueError as error:
            problems.append(f"{where}{error}")
    if problems:
        raise config_error(source, problems)
    return config
