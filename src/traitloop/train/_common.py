"""What every trainer shares: CPU-sane TRL arguments, a progress callback, atomic saving, weight hashes."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback
from transformers.integrations import TensorBoardCallback

from traitloop.config import TrainingConfig
from traitloop.models import resolve_precision


@dataclass
class TrainResult:
    """What a training stage reports: enough to see that training happened and how fast."""

    examples: int
    epochs: float
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # method-specific: DPO rewards, the reference used

    @property
    def examples_per_second(self) -> float:
        """Training throughput: examples processed (each epoch counted) per second."""
        return self.examples * self.epochs / self.seconds if self.seconds else 0.0


class StepCallback(TrainerCallback):
    def __init__(self, on_step: Callable[[int, int], None]) -> None:
        self.on_step = on_step

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001 - TrainerCallback's signature
        self.on_step(state.global_step, state.max_steps)


def trainer_callbacks(
    on_step: Callable[[int, int], None] | None, report_to: list[str] | None, log_dir: Path | None
) -> list[TrainerCallback]:
    """Progress, and TensorBoard writing to ``log_dir`` (the trainer's own default is its scratch folder)."""
    callbacks: list[TrainerCallback] = [StepCallback(on_step)] if on_step else []
    if "tensorboard" in (report_to or []):
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(log_dir or Path("runs") / "tensorboard"))
        callbacks.append(TensorBoardCallback(tb_writer=writer))
    return callbacks


def trainer_arguments(
    config: TrainingConfig,
    seed: int,
    scratch: Path,
    report_to: list[str] | None = None,
    device: str = "auto",
    dtype: str = "auto",
) -> dict[str, Any]:
    """Keyword arguments shared by SFTConfig and DPOConfig, so every method trains under the same settings.

    ``device`` and ``dtype`` are the run's (``auto`` or a name, see ``models.resolve_precision``): the trainer
    places the model on that device itself (each launched process on its own GPU) and, for bfloat16, computes
    through autocast while the weights it updates stay float32.

    Under a multi-process launch each process takes its share of ``batch_size``, so a step's global batch
    (and so the learning-rate schedule) is the same as on one process.

    TensorBoard is attached as a callback (so its events land in the run folder); other trackers, such as
    "wandb", go through the trainer's own ``report_to``.
    """
    precision = resolve_precision(device, dtype)
    return {
        "output_dir": str(scratch / "trainer"),
        "per_device_train_batch_size": config.batch_size // world_size(),
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "learning_rate": config.learning_rate,
        "num_train_epochs": config.epochs,
        "warmup_steps": config.warmup_ratio,
        "max_length": config.max_length,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [tracker for tracker in report_to or [] if tracker != "tensorboard"],
        "seed": seed,
        "data_seed": seed,
        "disable_tqdm": True,
        "use_cpu": precision.device.type == "cpu",
        # TRL defaults to bf16 and activation checkpointing, which suit a GPU; on a CPU without bf16 units they
        # make training several times slower, and a 135M model's activations fit in memory anyway.
        "bf16": precision.dtype == torch.bfloat16,
        "gradient_checkpointing": False,
        "dataloader_num_workers": 0,
    }


def world_size() -> int:
    """Processes training together: set by the launcher (``accelerate launch``, torchrun), else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's place among them (0: the main process), else 0."""
    return int(os.environ.get("RANK", "0"))


def scratch_for(output_dir: Path) -> Path:
    """The trainer's scratch folder next to ``output_dir``, emptied. Only the main process empties it: under
    a multi-process launch another process doing so could delete the folder while the main one saves."""
    scratch = output_dir.with_name(output_dir.name + ".partial")
    if rank() == 0:
        shutil.rmtree(scratch, ignore_errors=True)
    return scratch


def save_trained(trainer, output_dir: Path, scratch: Path, **save_kwargs: Any) -> None:
    """Save the trained weights from the main process only (every process holds the same weights after a
    data-parallel step), then let the others go on once they are on disk."""
    if trainer.is_world_process_zero():
        save_atomically(trainer.model, output_dir, scratch, **save_kwargs)
    trainer.accelerator.wait_for_everyone()


def save_atomically(model, output_dir: Path, scratch: Path, **save_kwargs: Any) -> None:
    """Save into scratch, then rename over ``output_dir``: a kill leaves the old weights or the new, never half."""
    model.save_pretrained(scratch / "weights", safe_serialization=True, **save_kwargs)
    shutil.rmtree(output_dir, ignore_errors=True)
    (scratch / "weights").rename(output_dir)
    shutil.rmtree(scratch, ignore_errors=True)


def weights_hash(tensors: Mapping[str, torch.Tensor]) -> str:
    """Hash of named tensors, independent of how PEFT names them in memory, so in-memory weights can be
    compared with saved ones: adapter names (``.default``, ``.ref``) and ``.base_layer`` are dropped."""
    digest = hashlib.sha256()
    for name in sorted(tensors, key=_plain_name):
        digest.update(_plain_name(name).encode())
        digest.update(tensors[name].detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def _plain_name(name: str) -> str:
    for suffix in (".default", ".ref"):
        name = name.replace(f"{suffix}.", ".")
    return name.replace(".base_layer.", ".")
