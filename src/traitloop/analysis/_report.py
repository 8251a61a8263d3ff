"""The HTML report: one self-contained file (plots inlined) with the verdict, statistics, plots and samples."""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from traitloop._atomic import atomic_write_bytes, atomic_write_text
from traitloop.analysis._analyze import Comparison, compare_runs
from traitloop.analysis._axes import axis_values, value_text
from traitloop.analysis._grid_plots import plot_facets, plot_grid
from traitloop.analysis._load import RunResults, runs_table
from traitloop.analysis._paired import ALPHA, BASE_MODEL, GENERATION_0, PairedTest
from traitloop.analysis._plots import plot_cobweb, plot_runs_overlaid, plot_scores_by_cycle, plot_tradeoff
from traitloop.analysis._run_verdict import RunVerdict, analyze_run, evaluated_generations
from traitloop.analysis._verdict import Thresholds

CONFIG_KEYS = (
    "run",
    "trait",
    "method",
    "regime",
    "model",
    "cycles",
    "seed",
    "seed_examples",
    "samples_per_cycle",
    "learning_rate",
    "epochs",
    "weights",
    "git",
)


@dataclass(frozen=True)
class Report:
    """What ``traitloop report`` wrote."""

    html: Path
    plots: list[Path]
    table: Path
    comparison: Comparison
    grid_table: Path | None = None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _na(why: str) -> Markup:
    """A cell without a value says why, never blank."""
    return Markup('<span class="na">n/a: {}</span>').format(why)


def _num(value: float | None, digits: int = 1, why: str = "not measured") -> Markup:
    return _na(why) if _missing(value) else Markup("{}").format(f"{value:.{digits}f}")


def _ci(
    mean: float | None, low: float | None, high: float | None, digits: int = 1, why: str = "not measured"
) -> Markup:
    """``mean [low, high]``; the interval may wrap under the mean, so wide tables fit a laptop's screen."""
    if _missing(mean):
        return _na(why)
    if _missing(low) or _missing(high):
        return _num(mean, digits)
    return Markup('{} <span class="ci">[{}, {}]</span>').format(
        f"{mean:.{digits}f}", f"{low:.{digits}f}", f"{high:.{digits}f}"
    )


def _ci_pair(
    value: float | None, interval: tuple[float, float] | None, digits: int = 1, why: str = "not measured"
) -> Markup:
    return _ci(value, *(interval or (None, None)), digits, why)


def _pct(share: float | None, why: str = "not measured") -> Markup:
    return _na(why) if _missing(share) else Markup("{}").format(f"{100 * share:.0f}%")


def _pct_ci(share: float | None, low: float | None, high: float | None, why: str = "not measured") -> Markup:
    """A share and its CI in percent."""
    return _ci(*(None if _missing(v) else 100 * v for v in (share, low, high)), digits=0, why=why)


def _p(value: float | None, why: str = "not tested") -> Markup:
    """A p-value to two significant digits, or ``< 0.0001``."""
    if _missing(value):
        return _na(why)
    return Markup("{}").format("< 0.0001" if value < 1e-4 else f"{value:.2g}")


def _last_paired_test(verdict: RunVerdict, reference: str) -> PairedTest | None:
    """The paired test of the run's last generation against ``reference`` (None if there is none)."""
    tests = [t for t in verdict.paired_tests if t.reference == reference]
    return tests[-1] if tests and tests[-1].generation == verdict.cycles[-1]["cycle"] else None


def _row_of(verdict: RunVerdict, cycle: int | None) -> dict[str, Any] | None:
    """A verdict's row for one generation (None: the base model), or None when it was not evaluated."""
    return next((row for row in verdict.cycles if row["cycle"] == cycle and row["n_answers"]), None)


def _has(verdict: RunVerdict, measure: str) -> bool:
    """Whether any generation of the run has ``measure`` (the optional persona projections)."""
    return any(row[f"{measure}_mean"] is not None for row in verdict.cycles)


def _trained(row: dict[str, Any]) -> Markup:
    """What a generation was trained on, exactly as its metrics.json recorded it."""
    if row["cycle"] is None:
        return _na("the base model is not trained")
    columns = {"examples": "examples_trained", "steps": "optimizer_steps", "tokens": "tokens_trained"}
    parts = [
        f"{row[column]:,} {fact}" if row[column] is not None else f"{fact} not recorded"
        for fact, column in columns.items()
    ]
    return Markup("<br>").join(parts)


def _config_row(run: RunResults, axes: list[str]) -> dict[str, Any]:
    c = run.config
    swept = {axis: value_text(value) for axis, value in axis_values(c, axes).items() if axis not in CONFIG_KEYS}
    return swept | {
        "run": run.name, "trait": c.trait, "method": c.method, "regime": c.regime, "model": c.model,
        "cycles": c.cycles, "seed": c.seed, "seed_examples": c.seed_examples,
        "samples_per_cycle": c.samples_per_cycle, "learning_rate": c.training.learning_rate,
        "epochs": c.training.epochs, "weights": "full" if c.training.full_finetune else f"LoRA r{c.training.lora.r}",
        "git": ", ".join(h[:12] for h in run.git_hashes) or "not recorded",
    }  # fmt: skip


def _samples(runs: list[RunResults]) -> list[dict[str, Any]]:
    samples = []
    for run in runs:
        for row in run.evals.itertuples(index=False):
            base = pd.isna(row.cycle)
            samples.append({
                "run": run.name, "order": -1 if base else int(row.cycle),
                "generation": "base" if base else int(row.cycle), "question": row.question, "answer": row.answer,
                "trait": None if pd.isna(row.trait_score) else float(row.trait_score),
                "coherence": None if pd.isna(row.coherence_score) else float(row.coherence_score),
            })  # fmt: skip
    return samples


CAPTIONS = {
    "scores_by_cycle": "Trait and coherence by cycle, 95% CI bands; dashed: the base model.",
    "runs_overlaid": "Every run's trait and coherence by cycle, coloured by setting; line style: replicate.",
    "tradeoff": "Trait change against coherence change from the base model, one point per generation.",
    "grid": "The grid over {axes}: in each cell, the runs amplified by the study's rule, k of n [95% Clopper-Pearson "
    "CI], and the change from generation 0 to the last generation in trait (its colour) and coherence [95% CI: over "
    "questions for one run, across runs for several]; other swept fields pooled.",
    "facets": "Trait and coherence by cycle for each value of {axis}: every run a thin line, the mean of the runs "
    "sharing the other swept fields' values a thick one.",
}


def _draw_plots(comparison: Comparison, folder: Path) -> list[tuple[Path, str]]:
    """Every plot for these runs, with its caption; one scores-by-cycle plot for a single run, overlays for many."""
    runs = comparison.runs
    if len(runs) == 1:
        first = plot_scores_by_cycle(runs[0], folder / "scores_by_cycle.png")
    else:
        first = plot_runs_overlaid(runs, folder / "runs_overlaid.png")
    plots = [(first, CAPTIONS[first.stem])]
    if comparison.grid:
        grid = plot_grid(comparison.grid, comparison.grid_axes, folder / "grid.png")
        plots.append((grid, CAPTIONS["grid"].format(axes=" × ".join(comparison.grid_axes))))
    for i, axis in enumerate(comparison.axes):
        facets = plot_facets(runs, [v.values for v in runs], axis, folder / f"trajectories_{i}.png")
        plots.append((facets, CAPTIONS["facets"].format(axis=axis)))
    plots.append((plot_tradeoff(runs, folder / "tradeoff.png"), CAPTIONS["tradeoff"]))
    for i, setting in enumerate(comparison.settings):
        members = [v for v in runs if v.setting == setting.setting]
        cobweb = plot_cobweb(setting, members, folder / f"cobweb_{i}.png")
        plots.append((cobweb, f"Cobweb plot of the fitted attractor map for {setting.setting}."))
    return plots


def render_html(title: str, comparison: Comparison, runs: list[RunResults], plots: list[tuple[Path, str]]) -> str:
    """The report page; every model answer is HTML-escaped (autoescape), every plot inlined as base64."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("traitloop.analysis", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    template = environment.get_template("report.html.j2")
    return template.render(
        title=title,
        version=version("traitloop"),
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        thresholds=comparison.thresholds,
        comparison=comparison,
        plots=[{"data": base64.b64encode(path.read_bytes()).decode(), "caption": caption} for path, caption in plots],
        config_keys=[*CONFIG_KEYS, *(axis for axis in comparison.axes if axis not in CONFIG_KEYS)],
        configs=[_config_row(run, comparison.axes) for run in runs],
        samples=_samples(runs),
        num=_num,
        na=_na,
        ci=_ci,
        ci_pair=_ci_pair,
        pct=_pct,
        pct_ci=_pct_ci,
        p=_p,
        last_test=_last_paired_test,
        has=_has,
        row_of=_row_of,
        generations=evaluated_generations,
        trained=_trained,
        BASE_MODEL=BASE_MODEL,
        GENERATION_0=GENERATION_0,
        ALPHA=ALPHA,
        value=value_text,
    )


def write_report(
    runs: list[RunResults],
    output: Path,
    thresholds: Thresholds | None = None,
    eval_sets: Sequence[RunResults] = (),
    axes_order: Sequence[str] = (),
    grid_axes: Sequence[str] | None = None,
    table: Path | None = None,
) -> Report:
    """Analyse ``runs`` (and the runs on their other ``eval_sets``), draw the plots beside ``output`` and write
    the HTML, a per-(run, cycle) Parquet table (``table``; default ``summary.parquet`` beside a single run's report,
    else named after ``output``) and, where the runs vary some field, the grid's table beside it (``*_grid``).
    ``axes_order`` and ``grid_axes`` as in ``compare_runs``."""
    comparison = compare_runs(runs, thresholds, eval_sets, axes_order, grid_axes)
    plots_folder = output.parent / ("plots" if len(runs) == 1 else f"{output.stem}_plots")
    plots = _draw_plots(comparison, plots_folder)
    title = f"traitloop report: {runs[0].name}" if len(runs) == 1 else f"traitloop comparison of {len(runs)} runs"
    atomic_write_text(output, render_html(title, comparison, runs, plots))
    table = table or output.parent / ("summary.parquet" if len(runs) == 1 else f"{output.stem}.parquet")
    verdicts = [*comparison.runs, *comparison.eval_sets]
    extra = [_verdict_columns(comparison, verdict) for verdict in verdicts]
    summary = runs_table([*runs, *eval_sets], comparison.thresholds, comparison.axes, extra)
    atomic_write_bytes(table, summary.to_parquet(index=False))
    grid_table = None
    if comparison.grid:
        grid_table = table.with_name(f"{table.stem}_grid.parquet")
        atomic_write_bytes(grid_table, grid_frame(comparison).to_parquet(index=False))
    return Report(
        html=output, plots=[path for path, _ in plots], table=table, comparison=comparison, grid_table=grid_table
    )


def _verdict_columns(comparison: Comparison, verdict: RunVerdict) -> dict[str, Any]:
    """The columns a run's rows of the summary table get from its verdict: its setting, grid cell and labels."""
    cell = {name: verdict.values.get(name) for name in comparison.grid_axes}
    return {
        "setting": verdict.setting,
        "cell": next((c.label for c in comparison.grid if c.values == cell), None),
        "verdict": verdict.verdict,
        "study_verdict": verdict.study_verdict,
    }


def grid_frame(comparison: Comparison) -> pd.DataFrame:
    """The grid as a table: one row per cell, the grid axes' values as columns."""
    rows = []
    for cell in comparison.grid:
        row: dict[str, Any] = {name: value_text(value) for name, value in cell.values.items()}
        row |= {"cell": cell.label, "runs": len(cell.runs), "amplified": cell.amplified}
        row |= {"amplified_significant": cell.amplified_significant, "amplified_ci_low": cell.amplified_ci[0]}
        row |= {"amplified_ci_high": cell.amplified_ci[1], "verdicts": ", ".join(cell.verdicts)}
        for measure, change in (("trait", cell.trait_change), ("coherence", cell.coherence_change)):
            row |= {f"{measure}_change": change.estimate, f"{measure}_change_ci_low": change.ci_low}
            row |= {f"{measure}_change_ci_high": change.ci_high}
        fit = cell.attractor
        row |= {"attractor_slope": fit.slope, "attractor_fixed_point": fit.fixed_point}
        row["rate_rule"] = comparison.thresholds.rate
        rows.append(row)
    return pd.DataFrame.from_records(rows)


def verdict_of(run: RunResults, thresholds: Thresholds | None = None) -> RunVerdict:
    """The machine-readable verdict on one run (what ``traitloop verdict --json`` prints)."""
    return analyze_run(run, thresholds)
