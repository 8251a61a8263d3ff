"""Reading finished runs: ``report`` and ``verdict`` (with the other eval sets' table)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from traitloop.cli._shared import api, cell, console

if TYPE_CHECKING:
    from traitloop.analysis import RunVerdict, Thresholds


def _thresholds(
    delta: float, slope: float, late_cycle: int, trait_at_least: float, coherence_at_least: float
) -> Thresholds:
    """The verdict's thresholds from the options ``report`` and ``verdict`` share."""
    from traitloop.analysis import Thresholds

    return Thresholds(
        delta=delta,
        slope=slope,
        late_cycle=late_cycle,
        trait_at_least=trait_at_least,
        coherence_at_least=coherence_at_least,
    )


Delta = Annotated[float, typer.Option(help="Points the trait must rise to count as amplified.")]
Slope = Annotated[float, typer.Option(help="Mean prefix slope (points/cycle) that counts as amplified.")]
LateCycle = Annotated[int, typer.Option(help="First cycle test (c) looks at.")]
TraitAtLeast = Annotated[float, typer.Option(help="Thresholded rate: an answer counts with trait >= this.")]
CoherenceAtLeast = Annotated[float, typer.Option(help="Thresholded rate: ... and coherence >= this.")]


def report(
    runs: Annotated[list[Path], typer.Argument(help="One run folder, or several to compare.")],
    compare: Annotated[bool, typer.Option(help="Side-by-side report even for one run.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="HTML file to write.")] = None,
    delta: Delta = 15.0,
    slope: Slope = 1.67,
    late_cycle: LateCycle = 4,
    trait_at_least: TraitAtLeast = 50.0,
    coherence_at_least: CoherenceAtLeast = 50.0,
) -> None:
    """Write an HTML report with the verdict, statistics, plots and a sample browser."""
    thresholds = _thresholds(delta, slope, late_cycle, trait_at_least, coherence_at_least)
    written = api().report(runs, output=output, compare=compare, thresholds=thresholds)
    for verdict in [*written.comparison.runs, *written.comparison.eval_sets]:
        where = "" if verdict.eval_set is None else f" on {verdict.eval_set}"
        console.print(f"{verdict.run}{where}: [bold]{verdict.verdict}[/]", highlight=False)
    console.print(f"report: {written.html}\nplots: {written.plots[0].parent}\ntable: {written.table}")


def verdict(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    json_: Annotated[bool, typer.Option("--json", help="Print the full verdict as JSON.")] = False,
    delta: Delta = 15.0,
    slope: Slope = 1.67,
    late_cycle: LateCycle = 4,
    trait_at_least: TraitAtLeast = 50.0,
    coherence_at_least: CoherenceAtLeast = 50.0,
    eval_set: Annotated[
        str | None,
        typer.Option("--eval-set", help="The verdict on this eval set (e.g. broad, broad@multi_turn) in full."),
    ] = None,
) -> None:
    """Did the trait amplify, decay or stay put? Each test with its value and threshold, and the paired tests;
    then one line per other eval set (suite, context, question file) the run's generations were asked."""
    thresholds = _thresholds(delta, slope, late_cycle, trait_at_least, coherence_at_least)
    result = api().verdict(run_dir, thresholds, eval_set)
    others = [] if eval_set else api().eval_set_verdicts(run_dir, thresholds)
    if json_:
        print(result.model_dump_json(indent=2))
        return
    where = "" if eval_set is None else f" on eval set {eval_set}"
    table = Table(title=f"{result.run} ({result.setting}){where}: {result.verdict}")
    for column in ("test", "value", "threshold", "passed"):
        table.add_column(column)
    for test in result.amplification_tests + result.decay_tests:
        value = "n/a" if test.value is None else f"{test.value:.2f}"
        table.add_row(test.name, value, f"{test.threshold:g}", {True: "yes", False: "no", None: "n/a"}[test.passed])
    console.print(table)
    paired = Table(title="paired tests over questions (trait, Wilcoxon signed-rank, Holm-corrected)")
    for column in ("gen", "vs", "n", "mean diff [95% CI]", "r_rb", "p", "Holm p"):
        paired.add_column(column, no_wrap=True)
    for t in result.paired_tests:
        difference = (
            "n/a" if t.mean_difference is None else f"{t.mean_difference:.1f} [{t.ci_low:.1f}, {t.ci_high:.1f}]"
        )
        p_values = [cell(t.p_value, ".2g"), cell(t.p_holm, ".2g")]
        paired.add_row(
            str(t.generation),
            t.reference.replace("generation", "gen").removesuffix(" model"),
            str(t.n_questions),
            difference,
            cell(t.rank_biserial, ".2f"),
            *p_values,
        )
    console.print(paired)
    if others:
        console.print(_eval_sets_table(others))


def _eval_sets_table(verdicts: list[RunVerdict]) -> Table:
    """One line per eval set: its verdict, the trait of the base model, generation 0 and the last generation,
    and the last generation's paired test against generation 0."""
    from traitloop.analysis import evaluated_generations

    table = Table(title="other eval sets (traitloop verdict --eval-set NAME for one in full)")
    for column in ("eval set", "generations", "verdict", "trait: base / gen 0 / last", "last - gen 0 (Holm p)"):
        table.add_column(column)
    for v in verdicts:
        by_cycle = {row["cycle"]: row for row in v.cycles if row["n_answers"]}
        last = v.cycles[-1] if v.cycles[-1]["cycle"] is not None else {}
        means = " / ".join(
            cell((row or {}).get("trait_mean"), ".1f") for row in (by_cycle.get(None), by_cycle.get(0), last)
        )
        test = next((t for t in reversed(v.paired_tests) if t.reference == "generation 0"), None)
        change = "n/a" if test is None or test.mean_difference is None else (
            f"{test.mean_difference:+.1f} ({cell(test.p_holm, '.2g')})"
        )  # fmt: skip
        table.add_row(v.eval_set, evaluated_generations(v), v.verdict, means, change)
    return table
