"""Where does the trait settle? A linear map v(t+1) = I + s·v(t) fitted to consecutive generations.

With |s| < 1 the map has one stable fixed point, I / (1 − s), that every chain converges to whatever its
start: the trait's attractor under this setting. s near 1 means each generation mostly copies the last
(idempotence); s > 1 means runaway amplification or decay. CIs come from resampling questions within each
run, jointly across its cycles, so they reflect measurement noise in every point of the map.
"""

from __future__ import annotations

import warnings

import numpy as np
from pydantic import BaseModel

from traitloop.analysis._bootstrap import resampled_cycle_means


class AttractorFit(BaseModel):
    intercept: float | None
    slope: float | None
    fixed_point: float | None
    slope_ci: tuple[float, float] | None = None
    intercept_ci: tuple[float, float] | None = None
    fixed_point_ci: tuple[float, float] | None = None
    n_pairs: int
    n_runs: int

    @property
    def converges(self) -> bool:
        return self.slope is not None and abs(self.slope) < 1


def transition_pairs(cycle_means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(v(t), v(t+1)) along the last axis: x and y of the map, one pair per consecutive pair of cycles."""
    return cycle_means[..., :-1], cycle_means[..., 1:]


def fit_map(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS intercept and slope of y on x along the last axis (NaN where x does not vary)."""
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        dx = x - np.nanmean(x, axis=-1, keepdims=True)
        dy = y - np.nanmean(y, axis=-1, keepdims=True)
        slope = np.nansum(dx * dy, axis=-1) / np.nansum(dx * dx, axis=-1)
        intercept = np.nanmean(y, axis=-1) - slope * np.nanmean(x, axis=-1)
    return intercept, slope


def fixed_point(intercept: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """I / (1 − s) where the map converges (|s| < 1), NaN elsewhere."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(slope) < 1, intercept / (1 - slope), np.nan)


def fit_attractor(matrices: list[np.ndarray], resamples: int = 2000, seed: int = 0) -> AttractorFit:
    """Fit the map to the consecutive cycles of one or more runs (questions × cycles matrices), pooled."""
    usable = [m for m in matrices if m.shape[1] >= 2]
    pairs = [transition_pairs(np.nanmean(m, axis=0)) for m in usable]
    n_pairs = sum(len(x) for x, _ in pairs)
    if n_pairs < 2:
        return AttractorFit(intercept=None, slope=None, fixed_point=None, n_pairs=n_pairs, n_runs=len(usable))
    x, y = (np.concatenate(parts) for parts in zip(*pairs, strict=True))
    intercept, slope = fit_map(x, y)
    if np.isnan(slope):
        return AttractorFit(intercept=None, slope=None, fixed_point=None, n_pairs=n_pairs, n_runs=len(usable))
    resampled = [transition_pairs(resampled_cycle_means(m, resamples, seed + i)) for i, m in enumerate(usable)]
    boot_x, boot_y = (np.concatenate(parts, axis=-1) for parts in zip(*resampled, strict=True))
    boot_intercept, boot_slope = fit_map(boot_x, boot_y)
    point = fixed_point(intercept, slope)
    return AttractorFit(
        intercept=round(float(intercept), 4),
        slope=round(float(slope), 4),
        fixed_point=None if np.isnan(point) else round(float(point), 4),
        slope_ci=_percentile_ci(boot_slope),
        intercept_ci=_percentile_ci(boot_intercept),
        fixed_point_ci=_percentile_ci(fixed_point(boot_intercept, boot_slope)) if not np.isnan(point) else None,
        n_pairs=n_pairs,
        n_runs=len(usable),
    )


def _percentile_ci(values: np.ndarray) -> tuple[float, float] | None:
    """95% percentile interval over the resamples where the statistic exists."""
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return None
    low, high = np.percentile(finite, [2.5, 97.5])
    return round(float(low), 4), round(float(high), 4)
