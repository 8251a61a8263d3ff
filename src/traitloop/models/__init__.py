"""Resolving a model name to weights on disk, and loading a base model with a generation's weights."""

from traitloop.models._load import is_adapter, load_model, load_tokenizer
from traitloop.models._registry import REGISTRY, cache_dir, gguf_path, is_cached, pull, resolve_model

__all__ = [
    "REGISTRY",
    "cache_dir",
    "gguf_path",
    "is_adapter",
    "is_cached",
    "load_model",
    "load_tokenizer",
    "pull",
    "resolve_model",
]
