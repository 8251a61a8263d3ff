"""Authoring: ``trait new`` (a trait folder written from a description), ``trait validate`` and ``trait list``,
``pool new`` (a prompt pool written by a generator) and ``pool import``.

It sits above the judges and the generation backends and uses theirs: a server is reached through
``traitloop.generate``'s server generator, answers are filtered by ``traitloop.judge``'s judges, and every
reply is kept in the judge cache.

May import: config, io, errors, _atomic, _http, _progress, traits, models, judge, generate.
"""

from traitloop.author._folder import new_trait, spec_data
from traitloop.author._near import dedupe, near_duplicates
from traitloop.author._pools import import_pool, write_generated_pool
from traitloop.author._seedset import read_seed_file
from traitloop.author._settings import (
    CATEGORIES,
    RUBRIC,
    Report,
    Settings,
    check_description,
    is_question,
    parse_numbered,
    read_description,
)
from traitloop.author._validate import default_output, trait_file, trait_rows, validate_trait
from traitloop.author._writer import (
    LOCAL_MODEL,
    WEAK_NOTE,
    Backend,
    LocalBackend,
    Request,
    ServerBackend,
    Writer,
    make_writer,
    parse_generator_option,
)

__all__ = [
    "CATEGORIES",
    "LOCAL_MODEL",
    "RUBRIC",
    "WEAK_NOTE",
    "Backend",
    "LocalBackend",
    "Report",
    "Request",
    "ServerBackend",
    "Settings",
    "Writer",
    "check_description",
    "dedupe",
    "default_output",
    "import_pool",
    "is_question",
    "make_writer",
    "near_duplicates",
    "new_trait",
    "parse_generator_option",
    "parse_numbered",
    "read_description",
    "read_seed_file",
    "spec_data",
    "trait_file",
    "trait_rows",
    "validate_trait",
    "write_generated_pool",
]
