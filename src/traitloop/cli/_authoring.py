"""Writing and checking inputs: ``trait new | validate | list`` and ``pool new | import``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from traitloop.cli._shared import api, console

Generator = Annotated[str, typer.Option(help="Who writes: local (the embedded model, offline) | openai:MODEL@URL.")]
ApiKeyEnv = Annotated[str | None, typer.Option(help="Environment variable holding the server's API key.")]
CachePath = Annotated[Path | None, typer.Option(help="Reply cache (SQLite; default: the judge cache).")]


def trait_new(
    name: Annotated[str, typer.Argument(help="The trait's name (lower case, e.g. stoic).")],
    description: Annotated[str | None, typer.Option(help="The trait, in a paragraph.")] = None,
    from_: Annotated[Path | None, typer.Option("--from", help="A file holding the description.")] = None,
    generator: Generator = "local",
    judge: Annotated[str, typer.Option(help="Trait judge for filtering: embedded | openai:MODEL@URL.")] = "embedded",
    size: Annotated[int, typer.Option(min=8, help="Seed conversations to keep (a held-out split comes on top).")] = 300,
    seed_min: Annotated[
        float | None, typer.Option(min=0, max=100, help="Judge score a seed answer needs at least (50).")
    ] = None,
    contrast_max: Annotated[
        float | None, typer.Option(min=0, max=100, help="Judge score a contrast answer may have at most (30).")
    ] = None,
    sdf: Annotated[bool, typer.Option(help="Also write the SDF recipe and documents.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Trait folder (default traits/NAME).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing folder.")] = False,
    api_key_env: ApiKeyEnv = None,
    cache: CachePath = None,
    seed_file: Annotated[
        Path | None,
        typer.Option(
            help="Your seed conversations (chat JSONL, or a JSON, Parquet or CSV file): kept as they are; "
            "the rest is written around them."
        ),  # fmt: skip
    ] = None,
    seed_field: Annotated[str | None, typer.Option(help="The key or column of --seed-file holding the chat.")] = None,
    eval_questions: Annotated[
        Path | None, typer.Option(help="Your narrow eval questions (any pool file); topped up to 12 if fewer.")
    ] = None,
    max_rounds: Annotated[
        int | None, typer.Option(min=1, help="Rounds of asking again for what the filters removed, per set (5).")
    ] = None,
    max_requests: Annotated[
        int | None, typer.Option(min=1, help="Most requests in all, cached replies included (no limit).")
    ] = None,
) -> None:
    """Write a trait folder (spec, seed, contrast, held-out split, eval suites) from a description, or around
    your own seed conversations (--seed-file)."""

    def say(message: str) -> None:
        console.print(message, highlight=False)

    folder, report = api().new_trait(
        name, description, from_file=from_, generator=generator, judge=judge, size=size, seed_min=seed_min,
        contrast_max=contrast_max, sdf=sdf, output=output, force=force, api_key_env=api_key_env, cache=cache,
        seed_file=seed_file, seed_field=seed_field, eval_questions=eval_questions, max_rounds=max_rounds,
        max_requests=max_requests, say=say, console=console,
    )  # fmt: skip
    kept = ", ".join(f"{k} {v}" for k, v in report.kept.items())
    console.print(f"kept: {kept}\nrequests: {report.requests}; {report.seconds:.0f} s", highlight=False)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(f"written: {folder} (what each filter removed: {folder / 'authoring.json'})", highlight=False)


def trait_validate(
    trait: Annotated[str, typer.Argument(help="A trait folder, its trait.yaml, or a built-in name.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to save validation.json.")] = None,
    pool: Annotated[str | None, typer.Option(help="Prompt pool to check overlap against (default built-in).")] = None,
    pool_field: Annotated[str | None, typer.Option(help="The pool's prompt column or key.")] = None,
) -> None:
    """Counts, anchors, eval-suite overlap with training prompts, the judge's AUROC; every problem by file:line."""
    report, path = api().validate_trait(trait, output, pool, pool_field, console)
    table = Table(title=f"{report.get('name', trait)} v{report.get('version', '?')}")
    for column in ("measure", "value"):
        table.add_column(column)
    for file, count in report["files"].items():
        table.add_row(file, f"{count}  {report['categories'][file]}")
    for key in ("anchors", "suites", "overlap", "auroc_holdout_vs_contrast"):
        if key in report:
            table.add_row(key, str(report[key]))
    console.print(table)
    for warning in report["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    for problem in report["problems"]:
        console.print(f"[red]problem:[/] {problem}", highlight=False)
    console.print(f"{len(report['problems'])} problem(s); saved {path}", highlight=False)
    if report["problems"]:
        raise typer.Exit(1)


def trait_list(folders: Annotated[list[Path] | None, typer.Argument(help="Your trait folders.")] = None) -> None:
    """Built-in traits and the folders given, with sizes and versions."""
    rows = api().list_traits(folders or [])
    table = Table()
    columns = ("name", "version", "where", "seed", "contrast", "holdout", "sdf_seed", "suites", "hash")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        row = {**row, "suites": ", ".join(f"{k} {v}" for k, v in row["suites"].items())}
        table.add_row(*(str(row[c]) for c in columns))
    console.print(table)


def pool_new(
    output: Annotated[Path, typer.Option("--output", "-o", help="The pool file to write (JSONL).")],
    generator: Generator = "local",
    size: Annotated[int, typer.Option(min=1, help="Prompts to write.")] = 500,
    categories: Annotated[
        str | None, typer.Option(help="Comma-separated categories (default: the built-in 12).")
    ] = None,
    api_key_env: ApiKeyEnv = None,
    cache: CachePath = None,
) -> None:
    """Write a prompt pool with a generator, deduplicated and filtered, with its provenance beside it."""
    chosen = [c.strip() for c in categories.split(",") if c.strip()] if categories else None
    pool = api().new_pool(output, generator, size, chosen, api_key_env, cache)
    console.print(f"{len(pool.prompts)} prompts written to {output}; removed: {pool.removed}", highlight=False)


def pool_import(
    source: Annotated[Path, typer.Argument(help="JSONL, JSON list, Parquet or CSV.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The pool file to write (JSONL).")],
    field: Annotated[str | None, typer.Option(help="The column or key holding the prompt.")] = None,
) -> None:
    """Filter any prompt file (English, length, personal data, code, duplicates) into a pool with provenance."""
    pool = api().import_pool(source, output, field)
    console.print(
        f"{len(pool.prompts)} of {pool.rows} prompts kept in {output}; removed: {pool.removed}", highlight=False
    )
