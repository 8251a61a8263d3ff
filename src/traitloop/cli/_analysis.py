"""Reading finished runs: ``report`` (of runs or a sweep folder) and ``verdict`` (with the other eval sets' table)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from traitloop.cli._shared import api, cell, console
from traitloop.cli._tables import eval_sets_table, paired_table

if TYPE_CHECKING:
    from traitloop.analysis import RunVerdict, Thresholds


def _thresholds(
    delta: float, slope: float, late_cycle: int, rate: str | None, trait_at_least: float | None,
    coherence_at_least: float | None,
) -> Thresholds:  # fmt: skip
    """The verdict's thresholds from the options ``report`` and ``verdict`` share (a bad rate is a UserError
    naming its bad part); ``--trait-at-least``/``--coherence-at-least`` are the ≥ rule's shorthand."""
    from traitloop.analysis import Thresholds

    cutoffs = {"rate": rate, "trait_at_least": trait_at_least, "coherence_at_least": coherence_at_least}
    given = {key: value for key, value in cutoffs.items() if value is not None}
    return Thresholds.model_validate({"delta": delta, "slope": slope, "late_cycle": late_cycle, **given})


Delta = Annotated[float, typer.Option(help="Points the trait must rise to count as amplified.")]
Slope = Annotated[float, typer.Option(help="Mean prefix slope (points/cycle) that counts as amplified.")]
LateCycle = Annotated[int, typer.Option(help="First cycle test (c) looks at.")]
Rate = Annotated[
    str | None,
    typer.Option(help="Thresholded rate: the share of answers meeting every condition, e.g. 'trait<30,coherence>50' "
                 "(default trait>=50,coherence>=50)."),
]  # fmt: skip
TraitAtLeast = Annotated[float | None, typer.Option(help="Shorthand for --rate 'trait>=T,coherence>=50'.")]
CoherenceAtLeast = Annotated[float | None, typer.Option(help="Shorthand for --rate 'trait>=50,coherence>=C'.")]


def _verdict_line(verdict: RunVerdict) -> str:
    rule = "" if verdict.verdict == verdict.study_verdict else f" (study's rule: {verdict.study_verdict})"
    return f"[bold]{verdict.verdict}[/]{rule}"


def report(
    runs: Annotated[list[Path], typer.Argument(help="One run folder, several to compare, or a sweep folder.")],
    compare: Annotated[bool, typer.Option(help="Side-by-side report even for one run.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="HTML file to write.")] = None,
    axes: Annotated[
        str | None, typer.Option(help="The one or two swept fields the grid is laid out by, e.g. seed_examples,cycles.")
    ] = None,
    delta: Delta = 15.0,
    slope: Slope = 1.67,
    late_cycle: LateCycle = 4,
    rate: Rate = None,
    trait_at_least: TraitAtLeast = None,
    coherence_at_least: CoherenceAtLeast = None,
) -> None:
    """Write an HTML report with the verdict, statistics, plots and a sample browser; over runs that vary some
    config field (a sweep), a grid by those fields."""
    thresholds = _thresholds(delta, slope, late_cycle, rate, trait_at_least, coherence_at_least)
    grid_axes = [a.strip() for a in axes.split(",") if a.strip()] if axes else None
    written = api().report(runs, output=output, compare=compare, thresholds=thresholds, axes=grid_axes)
    for verdict in [*written.comparison.runs, *written.comparison.eval_sets]:
        where = "" if verdict.eval_set is None else f" on {verdict.eval_set}"
        console.print(f"{verdict.run}{where}: {_verdict_line(verdict)}", highlight=False)
    console.print(f"report: {written.html}\nplots: {written.plots[0].parent}\ntable: {written.table}")
    if written.grid_table:
        console.print(f"grid over {' × '.join(written.comparison.grid_axes)}: {written.grid_table}", highlight=False)


def verdict(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    json_: Annotated[bool, typer.Option("--json", help="The full verdict as JSON, every eval set included.")] = False,
    delta: Delta = 15.0,
    slope: Slope = 1.67,
    late_cycle: LateCycle = 4,
    rate: Rate = None,
    trait_at_least: TraitAtLeast = None,
    coherence_at_least: CoherenceAtLeast = None,
    eval_set: Annotated[
        str | None,
        typer.Option("--eval-set", help="The verdict on this eval set (e.g. broad, broad@multi_turn) in full."),
    ] = None,
) -> None:
    """Did the trait amplify, decay or stay put? Each test with its value and threshold, and the paired tests;
    then one line per other eval set (suite, context, question file) the run's generations were asked."""
    thresholds = _thresholds(delta, slope, late_cycle, rate, trait_at_least, coherence_at_least)
    result = api().verdict(run_dir, thresholds, eval_set)
    if json_:
        print(result.model_dump_json(indent=2))
        return
    where = "" if eval_set is None else f" on eval set {eval_set}"
    table = Table(title=f"{result.run} ({result.setting}){where}: {_verdict_line(result)}")
    for column in ("test", "value", "threshold", "passed"):
        table.add_column(column)
    for test in result.amplification_tests + result.decay_tests:
        value = "n/a" if test.value is None else f"{test.value:.2f}"
        table.add_row(test.name, value, f"{test.threshold:g}", {True: "yes", False: "no", None: "n/a"}[test.passed])
    console.print(table)
    found = result.significance
    if found.generation is not None:
        difference = "n/a" if found.mean_difference is None else (
            f"{found.mean_difference:+.1f} [{cell(found.ci_low, '+.1f')}, {cell(found.ci_high, '+.1f')}]"
        )  # fmt: skip
        console.print(
            f"the change behind it: generation {found.generation} - generation 0 = {difference}, Holm p "
            f"{cell(found.p_holm, '.2g')}: {'beyond noise' if found.significant else 'not significant'}",
            highlight=False,
        )
    console.print(paired_table(result))
    if result.eval_sets:
        console.print(eval_sets_table(result.eval_sets))
