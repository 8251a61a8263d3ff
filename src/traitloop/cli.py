"""The ``traitloop`` command line: run | status | judge | models. Each command is a thin call into the API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from traitloop import api
from traitloop.errors import UserError

app = typer.Typer(help="Does self-training amplify a behavioural trait?", no_args_is_help=True)
models_app = typer.Typer(help="Models traitloop can use without a model hub.", no_args_is_help=True)
app.add_typer(models_app, name="models")
console = Console()


def _fail(error: UserError) -> None:
    console.print(f"[red]error:[/] {error}", highlight=False)
    raise typer.Exit(2)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Experiment config (YAML).")],
    set_: Annotated[list[str], typer.Option("--set", help="Override a field: --set cycles=4")] = [],  # noqa: B006
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Run folder (default runs/NAME).")] = None,
    force: Annotated[bool, typer.Option(help="Redo from the first cycle a changed config affects.")] = False,
) -> None:
    """Run an experiment, or resume it where it stopped."""
    try:
        folder = api.run(config, output=output, overrides=set_, force=force, console=console)
    except UserError as error:
        _fail(error)
    console.print(f"done: {folder}")


@app.command()
def status(run_dir: Annotated[Path, typer.Argument(help="A run folder.")]) -> None:
    """Which stages of a run are done, with each generation's trait and coherence."""
    try:
        rows = api.status(run_dir)
    except UserError as error:
        _fail(error)
    table = Table(title=str(run_dir))
    for column in ("cycle", "data", "train", "eval", "trait [95% CI]", "coherence", "trained on"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[key]) for key in ("cycle", "data", "train", "eval", "trait", "coherence", "trained")))
    console.print(table)


@app.command()
def judge(
    trait: Annotated[str, typer.Option(help="Built-in trait name or trait YAML path.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="JSONL: chat conversations or question/answer.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the scored rows.")],
    model: Annotated[str, typer.Option(help="Base model for the coherence judge.")] = "smollm2-135m-instruct",
) -> None:
    """Score answers for trait strength and coherence (0-100); rows keep their order."""
    try:
        count = api.judge_file(trait, input, output, model=model)
    except UserError as error:
        _fail(error)
    console.print(f"scored {count} rows into {output}")


@models_app.command("list")
def models_list() -> None:
    """Built-in models and whether they are converted in the cache."""
    table = Table()
    for column in ("name", "cached", "source"):
        table.add_column(column)
    for name, cached, description in api.list_models():
        table.add_row(name, "yes" if cached else "no", description)
    console.print(table)


@models_app.command("pull")
def models_pull(name: Annotated[str, typer.Argument(help="A built-in model name.")]) -> None:
    """Fetch and convert a built-in model into the cache now."""
    try:
        path = api.pull_model(name)
    except UserError as error:
        _fail(error)
    console.print(f"{name}: {path}")
