"""Resolving a model name to weights on disk, reading a model's shape from its config alone (for planning), and
loading a base model with a generation's weights onto the run's device.

May import: config, io, errors, _atomic.
"""

from traitloop.models._device import (
    CPU_FLOAT32,
    Precision,
    dtype_name,
    resolve_device,
    resolve_precision,
    resolve_training_precision,
)
from traitloop.models._export import EXPORT_FILE, export_weights
from traitloop.models._load import (
    applied_template_options,
    base_view,
    is_adapter,
    load_model,
    load_tokenizer,
    quantized,
)
from traitloop.models._registry import REGISTRY, cache_dir, gguf_path, is_cached, pull, resolve_model
from traitloop.models._shape import ModelShape, model_config, model_shape

__all__ = [
    "applied_template_options",
    "CPU_FLOAT32",
    "EXPORT_FILE",
    "ModelShape",
    "REGISTRY",
    "Precision",
    "base_view",
    "cache_dir",
    "dtype_name",
    "export_weights",
    "gguf_path",
    "is_adapter",
    "is_cached",
    "load_model",
    "load_tokenizer",
    "model_config",
    "model_shape",
    "pull",
    "quantized",
    "resolve_device",
    "resolve_model",
    "resolve_precision",
    "resolve_training_precision",
]
