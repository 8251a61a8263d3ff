"""Resampling questions jointly across cycles: the bootstrap behind every paired statistic.

The same eval questions are asked of every generation, so a resample draws question indices once and keeps
them for all cycles; that keeps the pairing between cycles that the idempotence index and the attractor
fit rely on.
"""

from __future__ import annotations

import warnings

import numpy as np


def resampled_cycle_means(matrix: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Resamples × cycles of cycle means, each from one draw of questions (rows of ``matrix``) with replacement."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, matrix.shape[0], size=(resamples, matrix.shape[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample may hold only unscored answers for a cycle
        return np.nanmean(matrix[picks], axis=1)
