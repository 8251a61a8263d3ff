"""SFT of one generation on chat conversations, with loss on the assistant's answer only (TRL SFTTrainer).

A generation is saved as a LoRA adapter on the base model (or full weights with ``full_finetune``). In the
``continual`` regime the previous generation's weights are loaded and trained further; in ``reinit`` a fresh
adapter starts from the base model every cycle.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model
from transformers import PrinterCallback, TrainerCallback
from transformers.integrations import TensorBoardCallback
from trl import SFTConfig, SFTTrainer

from traitloop.config import TrainingConfig
from traitloop.models import load_model, load_tokenizer
from traitloop.traits import Conversation


@dataclass
class TrainResult:
    """What a training stage reports: enough to see that training happened and how fast."""

    examples: int
    epochs: float
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)

    @property
    def examples_per_second(self) -> float:
        """Training throughput: examples processed (each epoch counted) per second."""
        return self.examples * self.epochs / self.seconds if self.seconds else 0.0


class _StepCallback(TrainerCallback):
    def __init__(self, on_step: Callable[[int, int], None]) -> None:
        self.on_step = on_step

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001 - TrainerCallback's signature
        self.on_step(state.global_step, state.max_steps)


def _callbacks(on_step, report_to: list[str], log_dir: Path | None) -> list[TrainerCallback]:
    """Progress, and TensorBoard writing to ``log_dir`` (the trainer's own default is its scratch folder)."""
    callbacks: list[TrainerCallback] = [_StepCallback(on_step)] if on_step else []
    if "tensorboard" in report_to:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(log_dir or Path("runs") / "tensorboard"))
        callbacks.append(TensorBoardCallback(tb_writer=writer))
    return callbacks


def _as_prompt_completion(conversations: list[Conversation]) -> Dataset:
    """TRL's conversational prompt-completion format: the loss falls on the completion alone."""
    return Dataset.from_list(
        [{"prompt": c.prompt, "completion": [{"role": "assistant", "content": c.answer}]} for c in conversations]
    )


def _trainable_model(base: str, config: TrainingConfig, start_from: Path | None, seed: int, trust: bool):
    """The model to train: previous weights when continuing, else a fresh seeded LoRA (or the full base)."""
    if start_from is not None:
        return load_model(base, start_from, trainable=True, trust_remote_code=trust)
    model = load_model(base, trainable=True, trust_remote_code=trust)
    if config.full_finetune:
        return model
    torch.manual_seed(seed)  # LoRA's A matrices are random: seed them so a re-run is identical
    lora = PeftLoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=config.lora.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def train_sft(
    base: str,
    conversations: list[Conversation],
    output_dir: Path,
    config: TrainingConfig,
    seed: int,
    start_from: Path | None = None,
    on_step: Callable[[int, int], None] | None = None,
    trust_remote_code: bool = False,
    report_to: list[str] | None = None,
    log_dir: Path | None = None,
) -> TrainResult:
    """Train one generation and save its weights (safetensors) to ``output_dir`` atomically.

    ``report_to`` names trackers ("tensorboard", "wandb") that receive the training curves; TensorBoard writes
    its events to ``log_dir``.
    """
    tokenizer = load_tokenizer(base, trust_remote_code)
    tokenizer.padding_side = "right"
    model = _trainable_model(base, config, start_from, seed, trust_remote_code)
    scratch = output_dir.with_name(output_dir.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    args = SFTConfig(
        output_dir=str(scratch / "trainer"),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        warmup_steps=config.warmup_ratio,
        max_length=config.max_length,
        completion_only_loss=True,
        logging_steps=1,
        save_strategy="no",
        report_to=[tracker for tracker in report_to or [] if tracker != "tensorboard"],
        seed=seed,
        data_seed=seed,
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        # TRL defaults to bf16 and activation checkpointing, which suit a GPU; on a CPU without bf16 units they
        # make training several times slower, and a 135M model's activations fit in memory anyway.
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        gradient_checkpointing=False,
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=_as_prompt_completion(conversations),
        processing_class=tokenizer,
        callbacks=_callbacks(on_step, report_to or [], log_dir),
    )
    trainer.remove_callback(PrinterCallback)  # progress is reported through on_step instead
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    trainer.model.save_pretrained(scratch / "weights", safe_serialization=True)
    shutil.rmtree(output_dir, ignore_errors=True)
    (scratch / "weights").rename(output_dir)
    shutil.rmtree(scratch, ignore_errors=True)
    return TrainResult(
        examples=len(conversations),
        epochs=config.epochs,
        steps=trainer.state.global_step,
        seconds=seconds,
        losses=losses,
    )
