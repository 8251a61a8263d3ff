"""The tables the reading commands print: a run's paired tests, its other eval sets, two runs compared."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from traitloop.cli._shared import cell

if TYPE_CHECKING:
    from traitloop.analysis import RunsCompared, RunVerdict


def paired_table(result: RunVerdict) -> Table:
    paired = Table(title="paired tests over questions (trait, Wilcoxon signed-rank, Holm-corrected)")
    for column in ("gen", "vs", "n", "mean diff [95% CI]", "r_rb", "p", "Holm p"):
        paired.add_column(column, no_wrap=True)
    for t in result.paired_tests:
        difference = (
            "n/a" if t.mean_difference is None else f"{t.mean_difference:.1f} [{t.ci_low:.1f}, {t.ci_high:.1f}]"
        )
        reference = t.reference.replace("generation", "gen").removesuffix(" model")
        p_values = [cell(t.p_value, ".2g"), cell(t.p_holm, ".2g")]
        paired.add_row(str(t.generation), reference, str(t.n_questions), difference, cell(t.rank_biserial, ".2f"),
                       *p_values)  # fmt: skip
    return paired


def eval_sets_table(verdicts: list[RunVerdict]) -> Table:
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


def between_table(compared: RunsCompared) -> Table:
    """One line per measure and generation: each run's mean, A − B [95% CI], rank-biserial r, p and Holm p."""
    table = Table(
        title=f"{compared.run_a} - {compared.run_b}, paired over {compared.n_questions} questions "
        "(Wilcoxon signed-rank, Holm-corrected across generations)"
    )
    for column in ("measure", "gen", "n", "A", "B", "A - B [95% CI]", "r_rb", "p", "Holm p"):
        table.add_column(column, no_wrap=True)
    for t in compared.tests:
        difference = "n/a" if t.mean_difference is None else (
            f"{t.mean_difference:+.1f} [{t.ci_low:+.1f}, {t.ci_high:+.1f}]"
        )  # fmt: skip
        table.add_row(
            t.measure, "base" if t.generation is None else str(t.generation), str(t.n_questions),
            cell(t.mean_a, ".1f"), cell(t.mean_b, ".1f"), difference, cell(t.rank_biserial, ".2f"),
            cell(t.p_value, ".2g"), cell(t.p_holm, ".2g"),
        )  # fmt: skip
    return table
