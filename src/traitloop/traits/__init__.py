"""Trait specs, seed conversations and prompt pools: the versioned data an experiment is built from.

Authoring (``_author``: a trait folder from a description) and validation (``_validate``) use the judges and
generators, which themselves use trait specs, so they are imported from their modules, not from here."""

from traitloop.traits._contexts import load_context
from traitloop.traits._data import (
    BASE_ANSWERS_PATH,
    Conversation,
    base_answers,
    load_conversations,
    prompt_slices,
    read_jsonl,
)
from traitloop.traits._pools import SHAREGPT, Pool, load_prompt_pool, read_pool_file
from traitloop.traits._sdf import Document, SdfRecipe, TextAnchor, load_documents, load_sdf_recipe
from traitloop.traits._spec import Anchor, TraitSpec, builtin_traits, load_trait

__all__ = [
    "BASE_ANSWERS_PATH",
    "base_answers",
    "Anchor",
    "Conversation",
    "Document",
    "Pool",
    "SHAREGPT",
    "SdfRecipe",
    "TextAnchor",
    "TraitSpec",
    "builtin_traits",
    "load_context",
    "load_conversations",
    "load_documents",
    "load_prompt_pool",
    "load_sdf_recipe",
    "read_pool_file",
    "load_trait",
    "prompt_slices",
    "read_jsonl",
]
