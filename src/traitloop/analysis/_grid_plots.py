"""The pictures of a sweep, laid out by the fields its runs vary: the grid over two of them (each cell its verdict
counts and changes) and the trajectories faceted by each field's values (replicates thin, their mean thick)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import TwoSlopeNorm

from traitloop.analysis._axes import label_of, value_text
from traitloop.analysis._grid import GridCell, ordered
from traitloop.analysis._plots import PALETTE, SCORE_LABELS, _figure, _save, _series, _styled
from traitloop.analysis._run_verdict import RunVerdict
from traitloop.analysis._verdict import Interval


def _change(interval: Interval, digits: int = 1) -> str:
    if interval.estimate is None:
        return "n/a"
    if interval.ci_low is None or interval.ci_high is None:
        return f"{interval.estimate:+.{digits}f}"
    return f"{interval.estimate:+.{digits}f} [{interval.ci_low:+.{digits}f}, {interval.ci_high:+.{digits}f}]"


def cell_text(cell: GridCell) -> str:
    """What a grid cell says: amplified k of n [CI], and the trait and coherence changes [CI]."""
    low, high = cell.amplified_ci
    return (
        f"amplified {cell.amplified} of {len(cell.runs)} [{100 * low:.0f}-{100 * high:.0f}%]\n"
        f"trait {_change(cell.trait_change)}\ncoherence {_change(cell.coherence_change)}"
    )


@_styled
def plot_grid(cells: list[GridCell], axes: list[str], path: Path) -> Path:
    """One cell per combination of the grid's axes, coloured by the trait change from generation 0 to the last
    generation, with its verdict counts and changes written in it; a combination no run has is left grey."""
    rows = ordered([cell.values[axes[0]] for cell in cells])
    columns = ordered([cell.values[axes[1]] for cell in cells]) if len(axes) == 2 else [None]
    by_key = {(cell.values[axes[0]], cell.values.get(axes[-1]) if len(axes) == 2 else None): cell for cell in cells}
    changes = np.full((len(rows), len(columns)), np.nan)
    for (r, row), (c, column) in ((rc, cc) for rc in enumerate(rows) for cc in enumerate(columns)):
        cell = by_key.get((row, column))
        if cell is not None and cell.trait_change.estimate is not None:
            changes[r, c] = cell.trait_change.estimate
    bound = max(15.0, float(np.nanmax(np.abs(changes))) if np.isfinite(changes).any() else 0.0)
    figure, axis = _figure(figsize=(2.2 + 2.9 * len(columns), 1.2 + 1.25 * len(rows)))
    axis.set_facecolor("#eeeeee")
    image = axis.imshow(
        np.ma.masked_invalid(changes), cmap="RdBu_r", norm=TwoSlopeNorm(0, -bound, bound), aspect="auto", alpha=0.75
    )
    for (r, row), (c, column) in ((rc, cc) for rc in enumerate(rows) for cc in enumerate(columns)):
        cell = by_key.get((row, column))
        text = cell_text(cell) if cell is not None else "no run"
        dark = np.isfinite(changes[r, c]) and abs(changes[r, c]) > 0.6 * bound
        color = "white" if dark else "black"
        axis.text(c, r, text, ha="center", va="center", fontsize=7.5, linespacing=1.4, color=color)
    axis.set_yticks(range(len(rows)), [value_text(v) for v in rows])
    axis.set_ylabel(axes[0])
    axis.set_xticks(range(len(columns)), [value_text(v) for v in columns] if len(axes) == 2 else [""])
    axis.set_xlabel(axes[1] if len(axes) == 2 else "")
    axis.xaxis.set_ticks_position("top")
    axis.xaxis.set_label_position("top")
    axis.spines[:].set_visible(False)
    figure.colorbar(image, ax=axis, fraction=0.04, pad=0.02, label="trait change, last − generation 0")
    return _save(figure, path)


@_styled
def plot_facets(
    verdicts: list[RunVerdict], values: Sequence[dict[str, Any]], axis_name: str, path: Path
) -> Path:
    """Trait and coherence by cycle, one column per value of ``axis_name``; in each, every run a thin line and the
    mean of the runs sharing the other fields' values a thick one, in that setting's colour."""
    facets = ordered([v[axis_name] for v in values])
    others = [{k: x for k, x in v.items() if k != axis_name} for v in values]
    groups = list(dict.fromkeys(label_of(o) for o in others))
    colors = {group: PALETTE[i % len(PALETTE)] for i, group in enumerate(groups)}
    figure, grid = _figure(2, len(facets), figsize=(1.4 + 3.0 * len(facets), 6.2))
    grid = np.asarray(grid).reshape(2, len(facets))
    for column, facet in enumerate(facets):
        members = [i for i, v in enumerate(values) if v[axis_name] == facet]
        for row, score in enumerate(("trait", "coherence")):
            axis = grid[row, column]
            for group in groups:
                runs = [verdicts[i] for i in members if label_of(others[i]) == group]
                _draw_group(axis, runs, score, colors[group], group or "mean of the runs")
            axis.set(ylim=(0, 100), xlabel="cycle" if row else "")
            if column == 0:
                axis.set_ylabel(SCORE_LABELS[score])
            if row == 0:
                axis.set_title(f"{axis_name}={value_text(facet)}")
    handles, labels = grid[0, 0].get_legend_handles_labels()
    for axis in grid.flat:
        for handle, name in zip(*axis.get_legend_handles_labels(), strict=True):
            if name not in labels:
                handles, labels = [*handles, handle], [*labels, name]
    figure.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), frameon=False, fontsize=8)
    figure.tight_layout(rect=(0, 0.07 * ((len(labels) + 2) // 3), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=150)
    return path


def _draw_group(axis: Any, runs: list[RunVerdict], score: str, color: str, name: str) -> None:
    """Each run of a group thin, and the group's mean at each cycle (over the runs that have it) thick."""
    if not runs:
        return
    by_cycle: dict[float, list[float]] = {}
    for verdict in runs:
        cycles, mean, _, _ = _series(verdict, score)
        axis.plot(cycles, mean, color=color, linewidth=0.8, alpha=0.55)
        for cycle, value in zip(cycles, mean, strict=True):
            by_cycle.setdefault(float(cycle), []).append(float(value))
    cycles = sorted(by_cycle)
    axis.plot(cycles, [np.mean(by_cycle[c]) for c in cycles], color=color, linewidth=2.6, label=name)
