"""``pool new``: a prompt pool written by a generator over categories of user message (yours or the built-in
dozen), in the same numbered-list batches as a trait's questions, with the pool filters and dedupe."""

from __future__ import annotations

from pathlib import Path

from traitloop.traits._author import CATEGORIES, Author, Report, Settings
from traitloop.traits._pools import Pool, filter_pool, write_pool
from traitloop.traits._writer import Writer

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
    details = {"generator": writer.name, "categories": list(chosen), "batches": report.batches, "notes": report.notes,
               "requests": writer.stats(), "weak_generator": writer.backend.weak}  # fmt: skip
    write_pool(pool, output, details)
    return pool
