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
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write the scored rows.")] = None,
    model: Annotated[str, typer.Option(help="Base model for the embedded coherence judge.")] = "smollm2-135m-instruct",
    judge_: Annotated[
        str, typer.Option("--judge", help="Judges, comma-separated: embedded | openai:MODEL@URL.")
    ] = "embedded",
    api_key_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the server judges' API key.")
    ] = None,
    agreement: Annotated[bool, typer.Option(help="Compare the judges: Spearman, MAD, Bland-Altman bias.")] = False,
) -> None:
    """Score answers for trait strength and coherence (0-100); rows keep their order."""
    judges = [j for j in judge_.split(",") if j.strip()]
    try:
        if agreement:
            results = api.judge_agreement(trait, input, judges, output, model=model, api_key_env=api_key_env)
        elif output is None:
            raise UserError("--output is needed to write the scores (or pass --agreement to compare judges)")
        else:
            count = api.judge_file(trait, input, output, model=model, judges=judges, api_key_env=api_key_env)
    except UserError as error:
        _fail(error)
    if not agreement:
        console.print(f"scored {count} rows into {output}")
        return
    table = Table(title=f"judge agreement on {input}")
    for column in ("measure", "judge A", "judge B", "n", "Spearman", "mean |A-B|", "bias A-B", "95% limits"):
        table.add_column(column)
    for r in results:
        limits = "" if r.loa_low is None else f"[{r.loa_low:.1f}, {r.loa_high:.1f}]"
        cells = [_cell(r.spearman, ".3f"), _cell(r.mean_abs_diff, ".1f"), _cell(r.bias, "+.1f"), limits]
        table.add_row(r.measure, r.judge_a, r.judge_b, str(r.n), *cells)
    console.print(table)
    if output is not None:
        console.print(f"scored rows written to {output}")


def _cell(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


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
