"""Optional experiment trackers: each generation's metrics to TensorBoard and/or Weights & Biases.

The run folder stays the record; a tracker is a view of it for people who watch many runs at once. Training
curves reach the same tracker through the trainer's own ``report_to`` (see ``train.train_sft``); this module
adds one point per generation (trait and coherence with their CIs, perplexity, diversity), so curves and
cycle-level results sit side by side. TensorBoard events go to ``<run>/tensorboard/``; W&B uses the project in
``WANDB_PROJECT`` (default ``traitloop``) and its usual login, never credentials from traitloop's files.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from traitloop.errors import UserError

_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}


def check_trackers(report_to: list[str]) -> None:
    """Fail before any work if a requested tracker's package is missing."""
    for tracker in report_to:
        if importlib.util.find_spec(_PACKAGES[tracker]) is None:
            raise UserError(f"report_to: {tracker} needs its package: pip install '{_PACKAGES[tracker]}'")


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    values = {
        f"{score}/{key}": metrics[score][key]
        for score in ("trait", "coherence")
        for key in ("mean", "ci_low", "ci_high")
    }
    values.update({key: metrics[key] for key in ("perplexity", "distinct_2", "length_words")})
    return {key: float(value) for key, value in values.items() if value is not None}


class CycleLogger:
    """Sends each evaluated generation's metrics to the trackers in ``report_to`` (none: does nothing)."""

    def __init__(self, report_to: list[str], folder: Path, name: str, config: dict[str, Any]) -> None:
        check_trackers(report_to)
        self.tensorboard = self.wandb = None
        if "tensorboard" in report_to:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(log_dir=str(folder / "tensorboard" / "cycles"))
        if "wandb" in report_to:
            import wandb

            project = os.environ.get("WANDB_PROJECT", "traitloop")
            self.wandb = wandb.init(project=project, name=name, config=config, dir=str(folder), reinit=True)
            self.wandb.define_metric("generation/*", step_metric="generation")

    def log(self, metrics: dict[str, Any]) -> None:
        """The base model is logged as step -1 under ``base/``; generation k as step k under ``generation/``."""
        cycle = metrics["cycle"]
        prefix, step = ("base", -1) if cycle is None else ("generation", cycle)
        scalars = {f"{prefix}/{key}": value for key, value in _scalars(metrics).items()}
        if self.tensorboard:
            for tag, value in scalars.items():
                self.tensorboard.add_scalar(tag, value, step)
            self.tensorboard.flush()
        if self.wandb:
            self.wandb.log({**scalars, "generation": step})

    def close(self) -> None:
        if self.tensorboard:
            self.tensorboard.close()
        if self.wandb:
            self.wandb.finish()
