"""``pool new``: a prompt pool written by a generator over categories of user message (yours or the built-in
dozen), in the same numbered-list batches as a trait's questions, with the pool filters and dedupe; and
``pool import``: any pool file through the pool filters, near duplicates included."""

from __future__ import annotations

import time
from pathlib import Path

from traitloop.author._author import Author
from traitloop.author._near import dedupe
from traitloop.author._settings import CATEGORIES, Report, Settings
from traitloop.author._writer import Writer
from traitloop.traits import Pool, filter_pool, read_pool_file, write_pool

NEAR = 0.9


def write_generated_pool(writer: Writer, output: Path, size: int, categories: list[str] | None = None) -> Pool:
    """``size`` prompts (fewer if the generator falls short, as the provenance says) written to ``output``."""
    chosen = {c: CATEGORIES.get(c, f"about {c}") for c in categories} if categories else CATEGORIES
    settings = Settings(size=size, near=NEAR)
    report = Report(writer.name, "none", {"size": size, "categories": list(chosen)}, writer.backend.weak)
    author = Author("pool", "", writer, settings, report, chosen)
    asked = author.questions("pool", size, [])
    pool = filter_pool([q for q, _ in asked], writer.name)
    by_prompt = dict(asked)
    pool.categories = [by_prompt[p] for p in pool.prompts]
    pool.removed = {**report.removed.get("pool questions", {}), **pool.removed}
    details = {"generator": writer.name, "categories": list(chosen), "batches": report.batches, "rounds": report.sets,
               "notes": report.notes, "warnings": report.warnings, "requests": writer.stats(),
               "weak_generator": writer.backend.weak}  # fmt: skip
    write_pool(pool, output, details)
    return pool


def import_pool(source: Path, output: Path, field: str | None = None, near: float | None = 0.95) -> Pool:
    """Read any pool file, apply the pool filters (exact duplicates, then near ones with ``near``) and write it
    with its provenance."""
    start = time.perf_counter()
    prompts = read_pool_file(source, field)
    pool = filter_pool(prompts, str(source))
    if near is not None:  # exact duplicates are gone already: this counts the near ones, after them
        pool.prompts = dedupe(pool.prompts, counts=pool.removed, near=near)
    pool.seconds = time.perf_counter() - start
    write_pool(pool, output, {"field": field, "near_duplicate_cosine": near})
    return pool
