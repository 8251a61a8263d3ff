"""DPO of one generation on (prompt, chosen, rejected) pairs, over TRL's DPOTrainer with a LoRA adapter.

The reference model is never a second full copy of the network:

- a fresh adapter (``reinit``, cycle 0, or a restart) is trained from the base, and TRL takes the reference
  log-probs with the adapter switched off, i.e. from the base model;
- a continued adapter (``continual``) is generation k-1's adapter loaded as the trainable ``default``; TRL
  copies it into a frozen second adapter named ``ref`` before training, so the reference is generation k-1.

What the reference actually was is read back from the trainer's model after TRL set it up (which adapter,
and a hash of its weights) and reported, so a run records the reference it used, not the one it asked for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datasets import Dataset
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model_state_dict
from pydantic import BaseModel, ConfigDict
from transformers import PrinterCallback
from trl import DPOConfig, DPOTrainer

from traitloop.config import DpoConfig, TrainingConfig
from traitloop.models import CPU_FLOAT32, load_model, load_tokenizer, resolve_device
from traitloop.train._common import (
    TrainResult,
    save_trained,
    scratch_for,
    trainer_arguments,
    trainer_callbacks,
    weights_hash,
)

REFERENCE_ADAPTER = "ref"  # the name TRL gives the frozen copy of a continued adapter
CPU_LOGPROB_TILE = (256, 8192)  # tokens x vocabulary entries per log-probability tile on CPU


class Pair(BaseModel):
    """One row of a DPO cycle's ``train.jsonl``: a prompt, two answers, and who wrote each."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    prompt: list[dict[str, str]]
    chosen: str
    rejected: str
    chosen_by: str
    rejected_by: str


def _as_preference_dataset(pairs: list[Pair]) -> Dataset:
    """TRL's conversational preference format: the chat template renders the prompt, loss falls on the answers."""
    return Dataset.from_list(
        [
            {
                "prompt": p.prompt,
                "chosen": [{"role": "assistant", "content": p.chosen}],
                "rejected": [{"role": "assistant", "content": p.rejected}],
            }
            for p in pairs
        ]
    )


def _lora(config: TrainingConfig) -> PeftLoraConfig:
    return PeftLoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=config.lora.target_modules,
        task_type="CAUSAL_LM",
    )


def reference_used(model: PeftModel) -> dict[str, str]:
    """Which reference a DPOTrainer's model computes against, exactly as TRL chooses it, and its weights' hash."""
    if REFERENCE_ADAPTER in model.peft_config:
        tensors = get_peft_model_state_dict(model, adapter_name=REFERENCE_ADAPTER)
        return {"reference": f"adapter:{REFERENCE_ADAPTER}", "reference_weights": weights_hash(tensors)}
    base = {k: v for k, v in model.get_base_model().state_dict().items() if "lora_" not in k}
    return {"reference": "base", "reference_weights": weights_hash(base)}


def _final_epoch_means(history: list[dict[str, Any]]) -> dict[str, float]:
    """Means of DPO's logged metrics over the last epoch's steps (one step's batch is too few pairs to read)."""
    steps = [e for e in history if "loss" in e]
    last = [e for e in steps if e["epoch"] > max(0.0, steps[-1]["epoch"] - 1.0) - 1e-9] if steps else []
    names = {
        "loss": "loss",
        "rewards/margins": "reward_margin",
        "rewards/chosen": "reward_chosen",
        "rewards/rejected": "reward_rejected",
        "rewards/accuracies": "reward_accuracy",
    }
    return {ours: round(sum(e[key] for e in last) / len(last), 4) for key, ours in names.items() if last}


def _cpu_sized_logprob_tiles() -> None:
    """TRL scores log-probabilities in [4096 tokens x 32768 vocab] fp32 tiles (512 MB each, sized for a GPU);
    on CPU every temporary of that size is a fresh, zero-filled allocation. [256 x 8192] tiles (8 MB) give the
    same numbers 1.3-1.5x faster on the embedded model (benchmarks/throughput.py measures DPO both ways)."""
    import trl.kernels.chunked_logprob as kernels
    import trl.trainer.utils as trl_utils

    if hasattr(kernels, "TOKEN_CHUNK_SIZE") and hasattr(trl_utils, "_CHUNKED_LOGPROB_CHUNK_SIZE"):
        kernels.TOKEN_CHUNK_SIZE, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = CPU_LOGPROB_TILE


def train_dpo(
    base: str,
    pairs: list[Pair],
    output_dir: Path,
    config: TrainingConfig,
    dpo: DpoConfig,
    seed: int,
    start_from: Path | None = None,
    on_step: Callable[[int, int], None] | None = None,
    trust_remote_code: bool = False,
    report_to: list[str] | None = None,
    log_dir: Path | None = None,
    device: str = "auto",
    dtype: str = "auto",
) -> TrainResult:
    """Train one generation by DPO and save its LoRA adapter (safetensors) to ``output_dir`` atomically.

    ``start_from`` (generation k-1's adapter) makes it both the starting point and the reference; without it
    a fresh adapter on the base is trained against the base.
    """
    tokenizer = load_tokenizer(base, trust_remote_code)
    if resolve_device(device).type == "cpu":
        _cpu_sized_logprob_tiles()
    # float32 on the CPU: the trainer moves the model to its device and keeps these as master weights
    load = {"trainable": True, "trust_remote_code": trust_remote_code, "precision": CPU_FLOAT32}
    if start_from is not None:
        model, peft_config = load_model(base, start_from, **load), None
    else:
        model, peft_config = load_model(base, **load), _lora(config)
    scratch = scratch_for(output_dir)
    arguments = trainer_arguments(config, seed, scratch, report_to, device, dtype)
    args = DPOConfig(**arguments, beta=dpo.beta, loss_type=[dpo.loss_type])
    trainer = DPOTrainer(
        model=model,
        ref_model=None,
        args=args,
        train_dataset=_as_preference_dataset(pairs),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=trainer_callbacks(on_step, report_to, log_dir),
    )
    trainer.remove_callback(PrinterCallback)  # progress is reported through on_step instead
    reference = reference_used(trainer.model)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    history = trainer.state.log_history
    facts = _final_epoch_means(history)
    if "reward_chosen" in facts:
        # Offline KL proxy: mean log-ratio log ref(y|x) - log policy(y|x) over chosen and rejected answers.
        facts["kl_proxy"] = round(-(facts["reward_chosen"] + facts["reward_rejected"]) / (2 * dpo.beta), 4)
    save_trained(trainer, output_dir, scratch, selected_adapters=["default"])
    return TrainResult(
        examples=len(pairs),
        epochs=config.epochs,
        steps=trainer.state.global_step,
        seconds=seconds,
        losses=[e["loss"] for e in history if "loss" in e],
        facts={**facts, **reference},
    )
