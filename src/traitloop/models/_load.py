"""Loading a base model, optionally with one generation's LoRA adapter (or full weights) on top, onto a device."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from traitloop.models._device import Precision, resolve_precision


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
    base: str,
    weights: Path | None = None,
    trainable: bool = False,
    trust_remote_code: bool = False,
    precision: Precision | None = None,
) -> PreTrainedModel:
    """Load the base model, then a generation's weights: an adapter on top of it, or a full model in its place,
    in ``precision``'s dtype on its device (default: ``auto``, the GPU in bfloat16 where there is one).

    An adapter stays a ``PeftModel`` so callers can ``disable_adapter()`` to reach the base model without a
    second copy in memory.
    """
    precision = precision or resolve_precision()
    source = str(weights) if weights is not None and not is_adapter(weights) else base
    model = AutoModelForCausalLM.from_pretrained(source, dtype=precision.dtype, trust_remote_code=trust_remote_code)
    if weights is not None and is_adapter(weights):
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(weights), is_trainable=trainable)
    model.train(trainable)
    return model.to(precision.device)


@contextlib.contextmanager
def base_view(model: PreTrainedModel) -> Iterator[PreTrainedModel]:
    """The base model inside a PEFT model (adapter switched off), or the model itself."""
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            yield model
    else:
        yield model
