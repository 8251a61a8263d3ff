"""What every trainer shares: the training job, CPU-sane TRL arguments, the model to train, a progress callback,
atomic saving, weight hashes."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import TrainerCallback
from transformers.integrations import TensorBoardCallback

from traitloop.config import TrainingConfig
from traitloop.models import CPU_FLOAT32, Precision, is_adapter, load_model, resolve_training_precision

OnStep = Callable[[int, int], None]


class TrainJob(BaseModel):
    """Everything one generation's training needs, as one typed value: the loop builds it, a method's trainer
    reads it, and a launched multi-process training sends it to every process as JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    method: str
    base: str = Field(description="The base model's folder or hub id.")
    data: Path = Field(description="The stage's train.jsonl.")
    output_dir: Path = Field(description="Where the generation's weights are saved (atomically).")
    training: TrainingConfig
    seed: int
    start_from: Path | None = Field(None, description="The previous generation's weights, to continue from.")
    reference: Path | Literal["base"] | None = Field(
        None,
        description="What the loss compares against (DPO's reference, distillation's teacher); None: the "
        "method's own default.",
    )
    settings: dict[str, Any] = Field(default_factory=dict, description="The method's own config section.")
    trust_remote_code: bool = False
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Chat template options every conversation is rendered with."
    )
    report_to: list[str] = Field(default_factory=list)
    log_dir: Path | None = Field(None, description="TensorBoard's folder.")
    device: str = "auto"
    dtype: str = "auto"


@dataclass
class TrainResult:
    """What a training stage reports: enough to see that training happened and how fast."""

    examples: int
    epochs: float
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    tokens: int | None = None  # tokens the model was trained on (padding excluded), every epoch counted
    dtype: str | None = None  # what the trainer computed in: bfloat16 (autocast) or float32
    facts: dict[str, Any] = field(default_factory=dict)  # method-specific: DPO rewards, the reference used

    @property
    def examples_per_second(self) -> float:
        """Training throughput: examples processed (each epoch counted) per second."""
        return self.examples * self.epochs / self.seconds if self.seconds else 0.0


class StepCallback(TrainerCallback):
    def __init__(self, on_step: OnStep) -> None:
        self.on_step = on_step

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001 - TrainerCallback's signature
        self.on_step(state.global_step, state.max_steps)


def trainer_callbacks(job: TrainJob, on_step: OnStep | None) -> list[TrainerCallback]:
    """Progress, and TensorBoard writing to the job's ``log_dir`` (the trainer's own default is its scratch
    folder)."""
    callbacks: list[TrainerCallback] = [StepCallback(on_step)] if on_step else []
    if "tensorboard" in job.report_to:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(job.log_dir or Path("runs") / "tensorboard"))
        callbacks.append(TensorBoardCallback(tb_writer=writer))
    return callbacks


def trainer_arguments(job: TrainJob, scratch: Path) -> dict[str, Any]:
    """Keyword arguments shared by every TRL trainer config, so every method trains under the same settings.

    The job's ``device`` and ``dtype`` are the run's (``auto`` or a name, see ``models.resolve_training_precision``):
    the trainer places the model on that device itself (each launched process on its own GPU) and, for bfloat16
    (a GPU's, or under ``auto`` a CPU's with native bfloat16), computes through autocast while the weights it
    updates stay float32.

    ``batch_size`` is a step's global batch: under a multi-process launch each process takes its share, in
    micro-batches accumulated to a step (``batch_split``), so the learning-rate schedule is the same however
    the batch is split. Activation checkpointing is on where memory binds (``uses_checkpointing``).

    TensorBoard is attached as a callback (so its events land in the run folder); other trackers, such as
    "wandb", go through the trainer's own ``report_to``.
    """
    config = job.training
    precision = resolve_training_precision(job.device, job.dtype)
    micro, accumulation = batch_split(config, world_size())
    checkpointing = uses_checkpointing(config, precision.device)
    return {
        "output_dir": str(scratch / "trainer"),
        "per_device_train_batch_size": micro,
        "gradient_accumulation_steps": accumulation,
        "learning_rate": config.learning_rate,
        "lr_scheduler_type": config.scheduler,
        "adam_beta1": config.adam_betas[0],
        "adam_beta2": config.adam_betas[1],
        "adam_epsilon": config.adam_eps,
        "num_train_epochs": config.epochs,
        **({"train_sampling_strategy": "group_by_length"} if config.collation == "length_grouped" else {}),
        "warmup_steps": config.warmup_ratio,
        "max_length": config.max_length,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [tracker for tracker in job.report_to if tracker != "tensorboard"],
        "seed": job.seed,
        "data_seed": job.seed,
        "disable_tqdm": True,
        "use_cpu": precision.device.type == "cpu",
        "bf16": precision.dtype == torch.bfloat16,
        "activation_checkpointing": checkpointing,
        # Non-reentrant checkpointing needs no input that requires grad: with LoRA the embeddings are frozen.
        **({"activation_checkpointing_kwargs": {"use_reentrant": False}} if checkpointing else {}),
        "dataloader_num_workers": 0,
        "include_num_input_tokens_seen": "non_padding",  # the exact volume each cycle trained on
    }


def batch_split(config: TrainingConfig, processes: int) -> tuple[int, int]:
    """(micro-batch per process, accumulation steps) that make ``batch_size`` (times the older
    ``gradient_accumulation_steps``) examples per optimizer step across ``processes``: the configured
    micro-batch, or each process's whole share in one pass. The loop sets ``micro_batch_size`` from the memory
    plan on a GPU before the job starts."""
    share = config.batch_size // processes
    micro = config.micro_batch_size or share
    return micro, share // micro * config.gradient_accumulation_steps


def uses_checkpointing(config: TrainingConfig, device: torch.device) -> bool:
    """Whether training recomputes activations: as configured, else on a GPU (where memory binds) and not on a
    CPU (where TRL's default checkpointing only makes a small model's training several times slower)."""
    return config.gradient_checkpointing if config.gradient_checkpointing is not None else device.type == "cuda"


def lora_config(config: TrainingConfig):
    """PEFT's LoRA config for the run's ``training.lora``."""
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=config.lora.target_modules,
        task_type="CAUSAL_LM",
    )


def frozen_precision(job: TrainJob) -> Precision:
    """Where and in what dtype the weights that stay frozen are held: the dtype training computes in, on this
    process's device (a 4B model's frozen base in bfloat16 is 8 GB, not fp32's 16 GB plus an autocast copy).
    Weights that train (LoRA's, or all of them with ``full_finetune``) stay float32: PEFT keeps an adapter in
    fp32 beside a bf16 base, and the trainer updates fp32 master weights."""
    if job.training.full_finetune:
        return CPU_FLOAT32  # every weight trains: fp32 master weights, moved to the device by the trainer
    precision = resolve_training_precision(job.device, job.dtype)
    if precision.device.type == "cuda":  # each launched process on its own GPU
        return Precision(torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))), precision.dtype)
    return precision


def trainable_model(job: TrainJob):
    """The model to train: the previous weights when continuing, else a fresh seeded LoRA (or the full base).
    The frozen base in the run's dtype on its device (``frozen_precision``); with ``quantization: 4bit`` in
    NF4, prepared for k-bit training (QLoRA)."""
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training

    load = {"trainable": True, "trust_remote_code": job.trust_remote_code, "precision": frozen_precision(job),
            "quantization": job.training.quantization}  # fmt: skip
    adapter = job.start_from is not None and is_adapter(job.start_from)
    model = load_model(job.base, None if adapter else job.start_from, **load)  # the base, or full weights
    if job.training.quantization:
        model = prepare_model_for_kbit_training(model, uses_checkpointing(job.training, model.device))
    if adapter:
        return PeftModel.from_pretrained(model, str(job.start_from), is_trainable=True)
    if job.start_from is not None or job.training.full_finetune:
        return model
    torch.manual_seed(job.seed)  # LoRA's A matrices are random: seed them so a re-run is identical
    return get_peft_model(model, lora_config(job.training))


def train_and_save(trainer, job: TrainJob, examples: int, **save_kwargs: Any) -> TrainResult:
    """Train, save the weights from the main process, and report what happened (with the method's facts added
    by the caller)."""
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    save_trained(trainer, job.output_dir, scratch_for(job.output_dir), **save_kwargs)
    return TrainResult(
        examples=examples,
        epochs=job.training.epochs,
        steps=trainer.state.global_step,
        seconds=seconds,
        losses=[entry["loss"] for entry in trainer.state.log_history if "loss" in entry],
        tokens=int(trainer.state.num_input_tokens_seen) or None,
        dtype="bfloat16" if trainer.args.bf16 else "float32",
    )


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
