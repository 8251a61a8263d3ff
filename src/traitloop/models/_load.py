"""Loading a base model, optionally with one generation's LoRA adapter (or full weights) on top, onto a device."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from traitloop.errors import UserError
from traitloop.models._device import Precision, resolve_precision


def load_tokenizer(
    base: str, trust_remote_code: bool = False, template_options: Mapping[str, Any] | None = None
) -> PreTrainedTokenizerBase:
    """The base model's tokenizer, with a pad token, padding on the left for batched generation.

    ``template_options`` (``generation.chat_template_kwargs``, e.g. ``enable_thinking: false``) are set inside
    its chat template, those the template reads: whoever renders a conversation with this tokenizer - the
    local generator, the trainers (TRL), the likelihood scorer, the persona probe - renders it the same way.
    """
    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    applied = applied_template_options(tokenizer.chat_template, template_options or {})
    if applied:
        settings = "".join(f"{{%- set {name} = {json.dumps(value)} %}}" for name, value in applied.items())
        tokenizer.chat_template = settings + tokenizer.chat_template
    return tokenizer


def applied_template_options(template: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options a chat template reads (by name): the others change nothing, so they are neither set nor
    recorded. ``enable_thinking`` applies to Qwen3's hybrid templates; SmolLM2's reads none."""
    if not isinstance(template, str):
        return {}
    return {name: value for name, value in sorted(options.items()) if re.search(rf"\b{re.escape(name)}\b", template)}


def is_adapter(weights: Path) -> bool:
    """Whether a generation's saved weights are a PEFT adapter (else they are a full model)."""
    return (weights / "adapter_config.json").is_file()


def load_model(
    base: str,
    weights: Path | None = None,
    trainable: bool = False,
    trust_remote_code: bool = False,
    precision: Precision | None = None,
    quantization: str | None = None,
) -> PreTrainedModel:
    """Load the base model, then a generation's weights: an adapter on top of it, or a full model in its place,
    in ``precision``'s dtype on its device (default: ``auto``, the GPU in bfloat16 where there is one). With
    ``quantization="4bit"`` the base is held in NF4 on the GPU (bitsandbytes), computing in ``precision``'s dtype.

    An adapter stays a ``PeftModel`` so callers can ``disable_adapter()`` to reach the base model without a
    second copy in memory.
    """
    precision = precision or resolve_precision()
    source = str(weights) if weights is not None and not is_adapter(weights) else base
    placement = quantized(quantization, precision) if quantization else {}
    model = AutoModelForCausalLM.from_pretrained(
        source, dtype=precision.dtype, trust_remote_code=trust_remote_code, **placement
    )
    if weights is not None and is_adapter(weights):
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(weights), is_trainable=trainable)
    model.train(trainable)
    return model if quantization else model.to(precision.device)


def quantized(quantization: str, precision: Precision) -> dict[str, Any]:
    """What ``from_pretrained`` takes to hold a base in 4-bit NF4 on ``precision``'s GPU (QLoRA's recipe: double
    quantization, computing in the run's dtype); a UserError where it cannot run."""
    if quantization != "4bit":
        raise UserError(f"training.quantization must be 4bit (got {quantization!r})")
    if precision.device.type != "cuda":
        raise UserError(
            "training.quantization: 4bit holds the base in NF4 with bitsandbytes, which needs a CUDA GPU; this run "
            f"is on {precision.device.type}. Drop training.quantization, or run on a GPU"
        )
    try:
        import bitsandbytes  # noqa: F401 - transformers loads it; a missing one is named here
    except ImportError:
        raise UserError("training.quantization: 4bit needs bitsandbytes: pip install 'traitloop[qlora]'") from None
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=precision.dtype,
    )
    return {"quantization_config": config, "device_map": {"": precision.device}}


@contextlib.contextmanager
def base_view(model: PreTrainedModel) -> Iterator[PreTrainedModel]:
    """The base model inside a PEFT model (adapter switched off), or the model itself."""
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            yield model
    else:
        yield model
