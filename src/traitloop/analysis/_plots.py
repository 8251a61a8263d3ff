"""The report's pictures, as PNG files readable in print: scores by cycle, several runs overlaid, the
trait-coherence tradeoff, and the cobweb plot of the fitted attractor map."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from traitloop.analysis._analyze import RunVerdict, SettingSummary

# Okabe-Ito: distinguishable in colour-blind vision and in greyscale print.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
LINESTYLES = ["-", "--", ":", "-."]
SCORE_LABELS = {"trait": "trait score (0-100)", "coherence": "coherence (0-100)"}
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.spines.top": False, "axes.spines.right": False}

P = ParamSpec("P")


def _figure(*grid: int, figsize: tuple[float, float]) -> tuple[Figure, Any]:
    """A figure drawn by Agg, outside pyplot: the caller's backend, open figures and rcParams stay as they were
    (a notebook or GUI app importing traitloop keeps its own)."""
    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(*grid)


def _styled(plot: Callable[P, Path]) -> Callable[P, Path]:
    """``plot`` drawn in the report's style, leaving the caller's rcParams as they were."""

    @functools.wraps(plot)
    def styled(*args: P.args, **kwargs: P.kwargs) -> Path:
        with matplotlib.rc_context(STYLE):
            return plot(*args, **kwargs)

    return styled


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=150)
    return path


def _series(verdict: RunVerdict, score: str) -> tuple[np.ndarray, ...]:
    rows = [r for r in verdict.cycles[1:] if r[f"{score}_mean"] is not None]
    return tuple(np.array([r[key] for r in rows], dtype=float) for key in ("cycle", *_keys(score)))


def _keys(score: str) -> tuple[str, str, str]:
    return f"{score}_mean", f"{score}_ci_low", f"{score}_ci_high"


def _base_line(axis: Axes, verdict: RunVerdict, score: str, color: str = "grey") -> None:
    base = verdict.cycles[0]
    mean, low, high = (base[key] for key in _keys(score))
    if mean is None:
        return
    axis.axhline(mean, color=color, linestyle="--", linewidth=1, label="base model")
    axis.axhspan(low, high, color=color, alpha=0.12, linewidth=0)


@_styled
def plot_scores_by_cycle(verdict: RunVerdict, path: Path) -> Path:
    """Trait and coherence per generation with 95% CI bands; the base model as a dashed line and band."""
    figure, axes = _figure(1, 2, figsize=(9, 3.6))
    for axis, score in zip(axes, ("trait", "coherence"), strict=True):
        cycles, mean, low, high = _series(verdict, score)
        axis.fill_between(cycles, low, high, color=PALETTE[0], alpha=0.2, linewidth=0, label="95% CI")
        axis.plot(cycles, mean, marker="o", color=PALETTE[0], label="generation")
        _base_line(axis, verdict, score)
        axis.set(xlabel="cycle", ylabel=SCORE_LABELS[score], ylim=(0, 100))
        axis.set_xticks(cycles)
    axes[0].legend(frameon=False, fontsize=8)
    figure.suptitle(f"{verdict.run} ({verdict.setting}): {verdict.verdict}")
    return _save(figure, path)


def _colors(verdicts: list[RunVerdict]) -> dict[str, str]:
    settings = list(dict.fromkeys(v.setting for v in verdicts))
    return {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(settings)}


@_styled
def plot_runs_overlaid(verdicts: list[RunVerdict], path: Path) -> Path:
    """Every run's trait and coherence by cycle; one colour per setting, replicates in different line styles."""
    colors, replicates_drawn = _colors(verdicts), Counter()
    figure, axes = _figure(1, 2, figsize=(10, 4))
    for verdict in verdicts:
        style = LINESTYLES[replicates_drawn[verdict.setting] % len(LINESTYLES)]
        replicates_drawn[verdict.setting] += 1
        color = colors[verdict.setting]
        for axis, score in zip(axes, ("trait", "coherence"), strict=True):
            cycles, mean, low, high = _series(verdict, score)
            axis.fill_between(cycles, low, high, color=color, alpha=0.08, linewidth=0)
            label = f"{verdict.setting} (seed {verdict.seed})"
            axis.plot(cycles, mean, marker="o", markersize=3, color=color, linestyle=style, label=label)
    for axis, score in zip(axes, ("trait", "coherence"), strict=True):
        axis.set(xlabel="cycle", ylabel=SCORE_LABELS[score], ylim=(0, 100))
    axes[1].legend(frameon=False, fontsize=7, loc="lower left")
    return _save(figure, path)


@_styled
def plot_tradeoff(verdicts: list[RunVerdict], path: Path) -> Path:
    """Change in trait against change in coherence (both from the base model), one point per generation."""
    colors = _colors(verdicts)
    figure, axis = _figure(figsize=(5, 4))
    for verdict in verdicts:
        tradeoff = verdict.tradeoff
        axis.scatter(
            tradeoff.trait_change, tradeoff.coherence_change, color=colors[verdict.setting], s=24, label=verdict.setting
        )
    axis.axhline(0, color="grey", linewidth=0.8)
    axis.axvline(0, color="grey", linewidth=0.8)
    axis.set(xlabel="trait change from base model", ylabel="coherence change from base model")
    handles, labels = axis.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axis.legend(unique.values(), unique.keys(), frameon=False, fontsize=8)
    return _save(figure, path)


@_styled
def plot_cobweb(summary: SettingSummary, verdicts: list[RunVerdict], path: Path) -> Path:
    """The fitted map v(t+1) = I + s·v(t) against the diagonal, with each run's path from cycle 0 as a cobweb."""
    figure, axis = _figure(figsize=(4.8, 4.6))
    grid = np.linspace(0, 100, 101)
    axis.plot(grid, grid, color="grey", linewidth=0.8, label="v(t+1) = v(t)")
    fit = summary.attractor
    if fit.slope is not None:
        axis.plot(
            grid,
            fit.intercept + fit.slope * grid,
            color=PALETTE[1],
            label=f"fit: {fit.intercept:.1f} + {fit.slope:.2f}·v(t)",
        )
    if fit.fixed_point is not None:
        axis.scatter(
            [fit.fixed_point],
            [fit.fixed_point],
            color=PALETTE[1],
            zorder=3,
            s=40,
            label=f"fixed point {fit.fixed_point:.1f}",
        )
    for i, verdict in enumerate(verdicts):
        _, mean, _, _ = _series(verdict, "trait")
        # (v0, v0) → (v0, v1) → (v1, v1) → (v1, v2) …: up to the next generation, across to the diagonal.
        xs, ys = np.repeat(mean, 2)[:-1], np.repeat(mean, 2)[1:]
        axis.plot(
            xs,
            ys,
            color=PALETTE[(i + 2) % len(PALETTE)],
            linewidth=1,
            marker=".",
            label=f"seed {verdict.seed}" if len(verdicts) > 1 else "run",
        )
    axis.set(
        xlim=(0, 100), ylim=(0, 100), xlabel="trait at cycle t", ylabel="trait at cycle t+1", title=summary.setting
    )
    axis.legend(frameon=False, fontsize=7, loc="upper left")
    return _save(figure, path)
