"""``judge``: score a file of answers, or compare judges on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from traitloop.cli._shared import api, cell, console
from traitloop.errors import UserError


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
    if agreement:
        results = api().judge_agreement(
            trait, input, judges, output, model=model, api_key_env=api_key_env, console=console
        )
    elif output is None:
        raise UserError("--output is needed to write the scores (or pass --agreement to compare judges)")
    else:
        count = api().judge_file(
            trait, input, output, model=model, judges=judges, api_key_env=api_key_env, console=console
        )
    if not agreement:
        console.print(f"scored {count} rows into {output}")
        return
    table = Table(title=f"judge agreement on {input}")
    for column in ("measure", "judge A", "judge B", "n", "Spearman", "mean |A-B|", "bias A-B", "95% limits"):
        table.add_column(column)
    for r in results:
        limits = "" if r.loa_low is None else f"[{r.loa_low:.1f}, {r.loa_high:.1f}]"
        cells = [cell(r.spearman, ".3f"), cell(r.mean_abs_diff, ".1f"), cell(r.bias, "+.1f"), limits]
        table.add_row(r.measure, r.judge_a, r.judge_b, str(r.n), *cells)
    console.print(table)
    if output is not None:
        console.print(f"scored rows written to {output}")
