"""Writing and checking traits and prompt pools (``traitloop trait`` and ``traitloop pool``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from traitloop._atomic import atomic_write_json
from traitloop._progress import Progress
from traitloop.author import Settings, default_output, make_writer, read_description, trait_rows, write_generated_pool
from traitloop.author import import_pool as filter_pool_file
from traitloop.author import new_trait as author_trait
from traitloop.author import validate_trait as validate
from traitloop.errors import UserError
from traitloop.judge import (
    judge_label,
    parse_judge_option,
)


def _given(**options: Any) -> dict[str, Any]:
    """The options a caller set, so that the rest keep their defaults from one place."""
    return {key: value for key, value in options.items() if value is not None}


def new_trait(
    name: str,
    description: str | None = None,
    *,
    from_file: Path | None = None,
    generator: str = "local",
    judge: str = "embedded",
    size: int = 300,
    seed_min: float | None = None,
    contrast_max: float | None = None,
    sdf: bool = False,
    output: Path | None = None,
    force: bool = False,
    api_key_env: str | None = None,
    cache: Path | None = None,
    seed_file: Path | None = None,
    seed_field: str | None = None,
    eval_questions: Path | None = None,
    max_rounds: int | None = None,
    max_requests: int | None = None,
    say: Callable[[str], None] = lambda _: None,
    console: Console | None = None,
) -> tuple[Path, Any]:
    """Write a trait folder from a description, or around a seed set (``traitloop trait new``); returns the
    folder and its report. Writing and judging show their progress on ``console``."""

    described = (description is not None) + (from_file is not None)
    if described > 1 or described == 0 and seed_file is None:
        raise UserError(
            "give the trait's description with --description TEXT or --from FILE (one of them), or a --seed-file"
        )
    text = read_description(Path(from_file)) if from_file is not None else description
    judge_spec = parse_judge_option(judge, api_key_env)
    writer = make_writer(generator, api_key_env=api_key_env, cache_path=cache, progress=Progress(console))
    folder = Path(output) if output else Path("traits") / name
    report = author_trait(
        name,
        text,
        writer,
        folder,
        judge=judge_label(judge_spec),
        judge_spec=judge_spec,
        settings=Settings(
            size=size,
            **_given(seed_min=seed_min, contrast_max=contrast_max, max_rounds=max_rounds, max_requests=max_requests),
        ),
        sdf=sdf,
        force=force,
        seed_file=seed_file,
        seed_field=seed_field,
        eval_questions=eval_questions,
        say=say,
    )
    return folder, report


def validate_trait(
    target: str | Path,
    output: Path | None = None,
    pool: str | Path | None = None,
    pool_field: str | None = None,
    console: Console | None = None,
) -> tuple[dict[str, Any], Path]:
    """Validate a trait folder (``traitloop trait validate``), its progress shown on ``console``, and save
    ``validation.json``."""
    report = validate(target, pool, pool_field, progress=Progress(console))
    path = Path(output) if output else default_output(target)
    atomic_write_json(path, report)
    return report, path


def list_traits(folders: list[Path] | None = None) -> list[dict[str, Any]]:
    """Built-in traits and the given trait folders, with sizes and versions (``traitloop trait list``)."""

    return trait_rows(folders)


def new_pool(
    output: Path,
    generator: str = "local",
    size: int = 500,
    categories: list[str] | None = None,
    api_key_env: str | None = None,
    cache: Path | None = None,
) -> Any:
    """An LLM-written prompt pool over categories (``traitloop pool new``), written with its provenance."""

    writer = make_writer(generator, api_key_env=api_key_env, cache_path=cache)
    return write_generated_pool(writer, output, size, categories)


def import_pool(source: Path, output: Path, field: str | None = None) -> Any:
    """Filter any pool file into a pool with its provenance (``traitloop pool import``)."""

    return filter_pool_file(Path(source), Path(output), field)
