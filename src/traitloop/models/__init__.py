"""Resolving a model name to weights on disk, and loading a base model with a generation's weights onto the
run's device.

May import: config, io, errors, _atomic.
"""

from traitloop.models._device import CPU_FLOAT32, Precision, dtype_name, resolve_device, resolve_precision
from traitloop.models._load import (
    applied_template_options,
    base_view,
    is_adapter,
    load_model,
    load_tokenizer,
    quantized,
)
from traitloop.models._registry import REGISTRY, cache_dir, gguf_path, is_cached, pull, resolve_model

__all__ = [
    "applied_template_options",
    "CPU_FLOAT32",
    "REGISTRY",
    "Precision",
    "base_view",
    "cache_dir",
    "dtype_name",
    "gguf_path",
    "is_adapter",
    "is_cached",
    "load_model",
    "load_tokenizer",
    "pull",
    "quantized",
    "resolve_device",
    "resolve_model",
    "resolve_precision",
]
