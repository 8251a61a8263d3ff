"""SFT of one generation over TRL's SFTTrainer: on chat conversations with loss on the assistant's answer only
(``train_sft``), or on raw documents with loss on every token (``train_sdf``, continued pretraining).

A generation is saved as a LoRA adapter on the base model (or full weights with ``full_finetune``). In the
``continual`` regime the previous generation's weights are loaded and trained further; in ``reinit`` a fresh
adapter starts from the base model every cycle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from datasets import Dataset
from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model
from transformers import PrinterCallback
from trl import SFTConfig, SFTTrainer

from traitloop.config import TrainingConfig
from traitloop.models import CPU_FLOAT32, load_model, load_tokenizer
from traitloop.train._common import TrainResult, save_trained, scratch_for, trainer_arguments, trainer_callbacks
from traitloop.traits import Conversation


def _as_prompt_completion(conversations: list[Conversation]) -> Dataset:
    """TRL's conversational prompt-completion format: the loss falls on the completion alone."""
    return Dataset.from_list(
        [{"prompt": c.prompt, "completion": [{"role": "assistant", "content": c.answer}]} for c in conversations]
    )


def _trainable_model(base: str, config: TrainingConfig, start_from: Path | None, seed: int, trust: bool):
    """The model to train: previous weights when continuing, else a fresh seeded LoRA (or the full base).
    Loaded in float32 on the CPU: the trainer moves it to its device and keeps these as master weights."""
    if start_from is not None:
        return load_model(base, start_from, trainable=True, trust_remote_code=trust, precision=CPU_FLOAT32)
    model = load_model(base, trainable=True, trust_remote_code=trust, precision=CPU_FLOAT32)
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
    device: str = "auto",
    dtype: str = "auto",
) -> TrainResult:
    """Train one generation on chat answers and save its weights (safetensors) to ``output_dir`` atomically."""
    dataset = _as_prompt_completion(conversations)
    tracking = (on_step, report_to, log_dir)
    trainer = _trainer(
        base, dataset, output_dir, config, seed, start_from, tracking, trust_remote_code, precision=(device, dtype)
    )
    return _train_and_save(trainer, output_dir, len(conversations), config)


def train_sdf(
    base: str,
    documents: list[str],
    output_dir: Path,
    config: TrainingConfig,
    seed: int,
    start_from: Path | None = None,
    on_step: Callable[[int, int], None] | None = None,
    trust_remote_code: bool = False,
    report_to: list[str] | None = None,
    log_dir: Path | None = None,
    device: str = "auto",
    dtype: str = "auto",
) -> TrainResult:
    """Continued pretraining of one generation: next-token loss on every token of raw documents."""
    trainer = sdf_trainer(
        base,
        documents,
        output_dir,
        config,
        seed,
        start_from,
        on_step,
        trust_remote_code,
        report_to,
        log_dir,
        device,
        dtype,
    )
    return _train_and_save(trainer, output_dir, len(documents), config)


def sdf_trainer(
    base: str,
    documents: list[str],
    output_dir: Path,
    config: TrainingConfig,
    seed: int,
    start_from: Path | None = None,
    on_step: Callable[[int, int], None] | None = None,
    trust_remote_code: bool = False,
    report_to: list[str] | None = None,
    log_dir: Path | None = None,
    device: str = "auto",
    dtype: str = "auto",
) -> SFTTrainer:
    """An SFTTrainer on a plain ``text`` dataset: TRL tokenizes it as is (plus EOS), with no chat template."""
    dataset = Dataset.from_list([{"text": d} for d in documents])
    tracking = (on_step, report_to, log_dir)
    return _trainer(
        base, dataset, output_dir, config, seed, start_from, tracking, trust_remote_code, False, (device, dtype)
    )


def _trainer(
    base: str,
    dataset: Dataset,
    output_dir: Path,
    config: TrainingConfig,
    seed: int,
    start_from: Path | None,
    tracking: tuple[Callable[[int, int], None] | None, list[str] | None, Path | None],
    trust_remote_code: bool,
    completion_only: bool = True,
    precision: tuple[str, str] = ("auto", "auto"),
) -> SFTTrainer:
    """``tracking``: the progress callback, the trackers named in the config and TensorBoard's folder;
    ``precision``: the run's device and dtype (``auto`` or names)."""
    on_step, report_to, log_dir = tracking
    tokenizer = load_tokenizer(base, trust_remote_code)
    tokenizer.padding_side = "right"
    model = _trainable_model(base, config, start_from, seed, trust_remote_code)
    arguments = trainer_arguments(config, seed, scratch_for(output_dir), report_to, *precision)
    args = SFTConfig(**arguments, completion_only_loss=completion_only)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=trainer_callbacks(on_step, report_to, log_dir),
    )
    trainer.remove_callback(PrinterCallback)  # progress is reported through on_step instead
    return trainer


def _train_and_save(trainer: SFTTrainer, output_dir: Path, examples: int, config: TrainingConfig) -> TrainResult:
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    save_trained(trainer, output_dir, scratch_for(output_dir))
    steps = trainer.state.global_step
    return TrainResult(examples=examples, epochs=config.epochs, steps=steps, seconds=seconds, losses=losses)
