"""Trait specs, seed conversations and the prompt pool: the versioned data an experiment is built from."""

from traitloop.traits._contexts import load_context
from traitloop.traits._data import (
    Conversation,
    load_conversations,
    load_prompt_pool,
    prompt_slices,
    read_jsonl,
)
from traitloop.traits._sdf import Document, SdfRecipe, TextAnchor, load_documents, load_sdf_recipe
from traitloop.traits._spec import Anchor, TraitSpec, builtin_traits, load_trait

__all__ = [
    "Anchor",
    "Conversation",
    "Document",
    "SdfRecipe",
    "TextAnchor",
    "TraitSpec",
    "builtin_traits",
    "load_context",
    "load_conversations",
    "load_documents",
    "load_prompt_pool",
    "load_sdf_recipe",
    "load_trait",
    "prompt_slices",
    "read_jsonl",
]
