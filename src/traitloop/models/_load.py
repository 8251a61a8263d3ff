"""Loading a base model, optionally with one generation's LoRA adapter (or full weights) on top."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase


def load_tokenizer(base: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """The base model's tokenizer, with a pad token, padding on the left for batched generation."""
    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def is_adapter(weights: Path) -> bool:
    """Whether a generation's saved weights are a PEFT adapter (else they are a full model)."""
    return (weights / "adapter_config.json").is_file()


def load_model(
    base: str, weights: Path | None = None, trainable: bool = False, trust_remote_code: bool = False
) -> PreTrainedModel:
    """Load the base model, then a generation's weights: an adapter on top of it, or a full model in its place.

    An adapter stays a ``PeftModel`` so callers can ``disable_adapter()`` to reach the base model without a
    second copy in memory.
    """
    source = str(weights) if weights is not None and not is_adapter(weights) else base
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, trust_remote_code=trust_remote_code)
    if weights is not None and is_adapter(weights):
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(weights), is_trainable=trainable)
    model.train(trainable)
    return model
