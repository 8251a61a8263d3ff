"""Many runs: ``sweep run | status`` and ``calibrate``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from traitloop.cli._shared import api, console

if TYPE_CHECKING:
    from traitloop.sweep import RunOutcome


def _band(text: str) -> tuple[float, float]:
    low, sep, high = text.partition("-")
    try:
        return float(low), float(high)
    except ValueError:
        raise typer.BadParameter(f"expected LOW-HIGH such as 40-60, got '{text}'") from None


def calibrate(
    config: Annotated[Path, typer.Argument(help="Experiment config (YAML).")],
    target: Annotated[str, typer.Option(help="Band generation 0's trait mean should reach, LOW-HIGH.")] = "40-60",
    low: Annotated[int, typer.Option(help="Fewest seed conversations to try.")] = 1,
    high: Annotated[int | None, typer.Option(help="Most seed conversations to try (default: all).")] = None,
    max_probes: Annotated[int, typer.Option(help="Most probe runs to train.")] = 8,
    set_: Annotated[list[str], typer.Option("--set", help="Override a field: --set seed=1")] = [],  # noqa: B006
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Sweep folder (default sweeps/NAME).")] = None,
) -> None:
    """Binary-search seed_examples so that cycle 0's trait mean lands in the target band."""
    result = api().calibrate(config, _band(target), output, low, high, max_probes, set_, console)
    table = Table(title=f"calibration for trait mean {target}")
    for column in ("seed_examples", "trait [95% CI]", "reused"):
        table.add_column(column)
    for probe in sorted(result.probes, key=lambda p: p.seed_examples):
        ci = f"{probe.trait_mean:.1f} [{probe.ci_low:.1f}, {probe.ci_high:.1f}]"
        table.add_row(str(probe.seed_examples), ci, "yes" if probe.reused else "")
    console.print(table)
    found = "in the band" if result.in_band else "closest to the band (none reached it)"
    console.print(f"seed_examples: {result.seed_examples} ({found}); written to {result.file}", highlight=False)


def sweep_run(
    sweep: Annotated[Path, typer.Argument(help="Sweep YAML, or a sweep folder to re-run.")],
    executor: Annotated[str, typer.Option(help="local (one run after another) or ray.")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address; default: start a local Ray.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Sweep folder (default sweeps/NAME).")] = None,
) -> None:
    """Run every run of a sweep; finished runs are skipped, unfinished ones resumed, failures reported."""

    def report(outcome: RunOutcome) -> None:
        detail = f": {outcome.error}" if outcome.error else f" ({outcome.seconds:.0f} s)" if outcome.seconds else ""
        console.print(f"{outcome.status:>7}  {outcome.name}{detail}", highlight=False)

    outcomes = api().sweep(sweep, executor=executor, address=address, output=output, on_outcome=report)
    failed = [o for o in outcomes if o.status == "failed"]
    console.print(f"{len(outcomes) - len(failed)} of {len(outcomes)} runs finished", highlight=False)
    if failed:
        raise typer.Exit(1)


def sweep_status(sweep: Annotated[Path, typer.Argument(help="Sweep folder or sweep YAML.")]) -> None:
    """One row per run (named by its grid values): state, stages done, last trait mean with CI, verdict."""
    rows = api().sweep_status(sweep)
    table = Table(title=str(sweep))
    for column in ("run", "state", "stages", "trait [95% CI] @cycle", "verdict", "error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        error = row["error"].splitlines()[0][:100] if row["error"] else ""
        table.add_row(row["run"], row["state"], row["stages"], row["trait"], row["verdict"], error)
    console.print(table)
