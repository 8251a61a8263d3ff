"""``compare``: two runs tested against each other, generation by generation, over the same questions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from traitloop.cli._shared import api, console
from traitloop.cli._tables import between_table


def compare(
    run_a: Annotated[Path, typer.Argument(help="A run folder (A in A - B).")],
    run_b: Annotated[Path, typer.Argument(help="The run folder it is compared with (B).")],
    generations: Annotated[
        str | None, typer.Option(help="Only these generations, e.g. 0,2,4 (base: the base model).")
    ] = None,
    eval_set: Annotated[
        str | None, typer.Option("--eval-set", help="Compare them on this eval set both were asked.")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Does run A differ from run B (a seeded chain from its no-seed control, continual from reinit)? For each
    generation both have, a paired test over the same questions of trait and coherence: the difference with its
    CI, the rank-biserial effect size and the Wilcoxon p, Holm-corrected across generations. Runs that asked
    different questions are refused."""
    result = api().compare(run_a, run_b, generations=generations, eval_set=eval_set)
    if json_:
        print(result.model_dump_json(indent=2))
        return
    console.print(between_table(result))
