"""One experiment: ``run``, ``status`` and ``eval``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from traitloop.cli._shared import api, console
from traitloop.config import apply_overrides, default_run_folder
from traitloop.errors import UserError
from traitloop.io import read_yaml
from traitloop.rundir import refuse_if_held


def _default_output(config: Path, overrides: list[str]) -> Path:
    """The run folder a config names, read without validating it (validation comes with the run)."""
    try:
        data = apply_overrides(read_yaml(config) or {}, overrides)
    except (UserError, AttributeError, TypeError, ValueError):
        data = {}
    name = data.get("name") if isinstance(data, dict) else None
    return default_run_folder(name if isinstance(name, str) else None)


def run(
    config: Annotated[Path, typer.Argument(help="Experiment config (YAML).")],
    set_: Annotated[list[str], typer.Option("--set", help="Override a field: --set cycles=4")] = [],  # noqa: B006
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Run folder (default runs/NAME).")] = None,
    force: Annotated[bool, typer.Option(help="Redo from the first cycle a changed config affects.")] = False,
    gpu_memory: Annotated[
        str | None, typer.Option("--gpu-memory", help="Check the plan against this GPU memory (80GiB) instead.")
    ] = None,
    no_memory_check: Annotated[
        bool, typer.Option("--no-memory-check", help="Run even if the plan says a stage will not fit the GPU.")
    ] = False,
) -> None:
    """Run an experiment, or resume it where it stopped. On a GPU, a config that will not fit is refused."""
    refuse_if_held(output or _default_output(config, set_))
    folder = api().run(
        config, output=output, overrides=set_, force=force, console=console, gpu_memory=gpu_memory,
        memory_check=not no_memory_check,
    )  # fmt: skip
    console.print(f"done: {folder}")


def status(run_dir: Annotated[Path, typer.Argument(help="A run folder.")]) -> None:
    """Which stages of a run are done, with each generation's trait and coherence."""
    rows = api().status(run_dir)
    table = Table(title=str(run_dir))
    for column in ("cycle", "data", "train", "eval", "trait [95% CI]", "coherence", "trained on"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[key]) for key in ("cycle", "data", "train", "eval", "trait", "coherence", "trained")))
    console.print(table)
    made_on = sorted({place for row in rows for place in row["device"].split(", ") if place})
    if made_on:
        console.print(f"made on: {', '.join(made_on)} (device/dtype its stages recorded)", highlight=False)


def eval_(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    questions: Annotated[Path | None, typer.Option(help="Questions: JSONL, a JSON list, CSV or Parquet.")] = None,
    name: Annotated[str | None, typer.Option(help="Name of this eval set (its folder under evals/).")] = None,
    suite: Annotated[str | None, typer.Option(help="Or one of the trait's eval suites, e.g. broad.")] = None,
    generations: Annotated[str, typer.Option(help="'all', or a list such as base,0,3.")] = "all",
    contexts: Annotated[
        str, typer.Option(help="Contexts to ask in, comma-separated: none, neutral_system, multi_turn, ...")
    ] = "none",
    force: Annotated[bool, typer.Option(help="Redo an eval set made with other questions or settings.")] = False,
) -> None:
    """Evaluate finished generations on new questions or contexts, without retraining."""
    folder = api().evaluate(
        run_dir, questions, name, generations, [c.strip() for c in contexts.split(",") if c.strip()], force,
        console=console, suite=suite,
    )  # fmt: skip
    console.print(f"done: {folder}")
