"""Trait specs, seed conversations and prompt pools: the versioned data an experiment is built from, and the
text filters (regex, exact duplicates) a pool or a trait's data passes.

May import: config, io, errors, _atomic, models.
"""

from traitloop.traits._contexts import load_context
from traitloop.traits._data import (
    BASE_ANSWERS_PATH,
    Conversation,
    base_answers,
    conversation_of,
    load_conversations,
    prompt_slices,
    read_jsonl,
)
from traitloop.traits._filters import (
    POOL_FILTERS,
    REPLY_FILTERS,
    Filter,
    apply_filters,
    dedupe,
    exact_duplicates,
    is_code_dump,
    is_english,
    is_refusal,
    leaks_template,
    length_filter,
    normal_form,
    personal_data,
)
from traitloop.traits._pools import (
    SHAREGPT,
    Pool,
    filter_pool,
    load_prompt_pool,
    pool_rows,
    prompt_of,
    read_pool_file,
    write_pool,
)
from traitloop.traits._sdf import Document, SdfRecipe, TextAnchor, load_documents, load_sdf_recipe
from traitloop.traits._spec import (
    ANCHOR_SCORES,
    DATA_DIR,
    NARROW,
    Anchor,
    TraitSpec,
    builtin_traits,
    load_trait,
    spec_problems,
)

__all__ = [
    "BASE_ANSWERS_PATH",
    "base_answers",
    "ANCHOR_SCORES",
    "Anchor",
    "Conversation",
    "DATA_DIR",
    "Document",
    "Filter",
    "NARROW",
    "POOL_FILTERS",
    "Pool",
    "REPLY_FILTERS",
    "SHAREGPT",
    "SdfRecipe",
    "TextAnchor",
    "TraitSpec",
    "apply_filters",
    "builtin_traits",
    "conversation_of",
    "dedupe",
    "exact_duplicates",
    "filter_pool",
    "is_code_dump",
    "is_english",
    "is_refusal",
    "leaks_template",
    "length_filter",
    "load_context",
    "load_conversations",
    "load_documents",
    "load_prompt_pool",
    "load_sdf_recipe",
    "load_trait",
    "normal_form",
    "personal_data",
    "pool_rows",
    "prompt_of",
    "prompt_slices",
    "read_jsonl",
    "read_pool_file",
    "spec_problems",
    "write_pool",
]
