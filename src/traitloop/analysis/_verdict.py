"""Did the trait amplify? Amplification tests, the noise floor, idempotence and the trend over cycles.

Each test works on per-generation means (cycle 0 = the seeded generation, then the self-trained ones) and
reports its threshold with its value, so a reader can see how close a run came. The defaults are the
published choices: Δ = 15 points, slope s = 1.67 points per cycle, late cycles from cycle 4.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, field_validator, model_validator
from scipy import stats

from traitloop.analysis._bootstrap import resampled_cycle_means
from traitloop.analysis._paired import PairedTest, Significance, significance
from traitloop.analysis._rate import DEFAULT_RATE, Condition, parse_rate, rate_text
from traitloop.errors import UserError


class Thresholds(BaseModel):
    """The thresholds of the amplification tests, and the rule of the thresholded rate (the share of answers
    meeting every condition of ``rate``, e.g. ``trait<30,coherence>50``); reported with every verdict.

    ``trait_at_least`` and ``coherence_at_least`` are still accepted, for ``rate="trait>=T,coherence>=C"``.
    """

    delta: float = 15.0
    slope: float = 1.67
    late_cycle: int = 4
    rate: str = DEFAULT_RATE

    @model_validator(mode="before")
    @classmethod
    def _from_cutoffs(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not {"trait_at_least", "coherence_at_least"} & data.keys():
            return data
        if "rate" in data:
            raise UserError(
                "give the thresholded rate as a rule (--rate) or as its >= cutoffs (--trait-at-least, "
                "--coherence-at-least), not both"
            )
        data = dict(data)
        trait, coherence = data.pop("trait_at_least", 50.0), data.pop("coherence_at_least", 50.0)
        return data | {"rate": f"trait>={trait:g},coherence>={coherence:g}"}

    @field_validator("rate")
    @classmethod
    def _normalised(cls, rate: str) -> str:
        return rate_text(parse_rate(rate))  # a bad rule is a UserError naming its bad part

    @property
    def conditions(self) -> list[Condition]:
        return parse_rate(self.rate)


class Test(BaseModel):
    """One amplification test: its value, its threshold, and whether it passed (None: not enough cycles)."""

    name: str
    value: float | None
    threshold: float
    passed: bool | None


class Step(BaseModel):
    """Change from cycle t to t+1 against the noise floor expected from measurement error alone."""

    start: int
    change: float
    floor: float
    exceeds: bool


class Interval(BaseModel):
    """An estimate with its 95% CI; ``note`` says why the estimate is missing."""

    estimate: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    note: str | None = None


class Trend(BaseModel):
    """OLS slope over cycles ≥ 1 with its 95% CI, and the Mann-Kendall test (Kendall's tau against cycle)."""

    slope: float | None
    ci_low: float | None
    ci_high: float | None
    kendall_tau: float | None
    mann_kendall_p: float | None


def ols_slope(y: list[float] | np.ndarray) -> float:
    """Least-squares slope of ``y`` against 0, 1, 2, …"""
    values = np.asarray(y, dtype=float)
    x = np.arange(len(values), dtype=float)
    return float(((x - x.mean()) * (values - values.mean())).sum() / ((x - x.mean()) ** 2).sum())


SLOPE_MIN_GENERATIONS = 3  # cycle 0 and two self-trained cycles


def mean_prefix_slope(means: list[float]) -> float | None:
    """Mean of the OLS slopes over every prefix of two or more cycles; one late spike moves only a few of them.

    None for fewer than ``SLOPE_MIN_GENERATIONS`` generations: over two, the "slope" is test (a)'s difference
    held to s instead of Δ, so a 2-point wobble of a one-cycle run would pass it as amplified or decayed.
    """
    if len(means) < SLOPE_MIN_GENERATIONS:
        return None
    return float(np.mean([ols_slope(means[:end]) for end in range(2, len(means) + 1)]))


def amplification_tests(means: list[float], thresholds: Thresholds) -> list[Test]:
    """(a) last − first ≥ Δ; (b) mean prefix slope ≥ s; (c) some cycle ≥ late_cycle exceeds cycle 0 by ≥ Δ."""
    last_minus_first = means[-1] - means[0] if len(means) >= 2 else None
    prefix_slope = mean_prefix_slope(means)
    late = means[thresholds.late_cycle :]
    late_excess = max(late) - means[0] if late else None
    return [
        _test("last_minus_first", last_minus_first, thresholds.delta),
        _test("mean_prefix_slope", prefix_slope, thresholds.slope),
        _test(f"late_cycle_excess (cycles >= {thresholds.late_cycle})", late_excess, thresholds.delta),
    ]


def decay_tests(means: list[float], thresholds: Thresholds) -> list[Test]:
    """The mirror of tests (a) and (b): the trait fell by at least Δ, or its mean prefix slope is ≤ −s."""
    flipped = [-m for m in means]
    return [
        _test("first_minus_last", flipped[-1] - flipped[0] if len(means) >= 2 else None, thresholds.delta),
        _test("negative_mean_prefix_slope", mean_prefix_slope(flipped), thresholds.slope),
    ]


def _test(name: str, value: float | None, threshold: float) -> Test:
    return Test(
        name=name,
        value=None if value is None else round(value, 4),
        threshold=threshold,
        passed=None if value is None else bool(value >= threshold),
    )


def noise_floor_steps(means: list[float], ses: list[float]) -> list[Step]:
    """Each step's |change| against √(se_t² + se_t+1²)·√(2/π), the mean |difference| of two noisy equal means."""
    steps = []
    for t in range(len(means) - 1):
        floor = math.sqrt(ses[t] ** 2 + ses[t + 1] ** 2) * math.sqrt(2 / math.pi)
        change = means[t + 1] - means[t]
        steps.append(Step(start=t, change=round(change, 4), floor=round(floor, 4), exceeds=abs(change) > floor))
    return steps


def share_beyond_floor(steps: list[Step]) -> float | None:
    """Share of the steps after cycle 1 (1→2, 2→3, …) whose change exceeds the noise floor."""
    later = [s for s in steps if s.start >= 1]
    return round(sum(s.exceeds for s in later) / len(later), 4) if later else None


def idempotence_index(matrix: np.ndarray, resamples: int, seed: int) -> Interval:
    """Mean |score_k − score_1| over cycles k ≥ 2, with a 95% CI from resampling questions (paired across cycles)."""
    if matrix.shape[1] < 3:
        return Interval(estimate=None, note="needs generations 0, 1 and 2")

    def index(cycle_means: np.ndarray) -> np.ndarray:
        return np.abs(cycle_means[..., 2:] - cycle_means[..., 1:2]).mean(axis=-1)

    estimate = float(index(np.nanmean(matrix, axis=0)))
    low, high = np.percentile(index(resampled_cycle_means(matrix, resamples, seed)), [2.5, 97.5])
    return Interval(estimate=round(estimate, 4), ci_low=round(float(low), 4), ci_high=round(float(high), 4))


def trend_after_seed(means: list[float]) -> Trend:
    """Is there a trend once self-training starts? OLS slope over cycles ≥ 1 and Mann-Kendall, from 3 cycles on."""
    later = means[1:]
    if len(later) < 3 or np.ptp(later) == 0:
        slope = 0.0 if len(later) >= 3 else None
        return Trend(slope=slope, ci_low=slope, ci_high=slope, kendall_tau=None, mann_kendall_p=None)
    cycles = np.arange(1, len(means))
    fit = stats.linregress(cycles, later)
    margin = stats.t.ppf(0.975, len(later) - 2) * fit.stderr
    tau = stats.kendalltau(cycles, later)
    return Trend(
        slope=round(float(fit.slope), 4),
        ci_low=round(float(fit.slope - margin), 4),
        ci_high=round(float(fit.slope + margin), 4),
        kendall_tau=round(float(tau.statistic), 4),
        mann_kendall_p=round(float(tau.pvalue), 4),
    )


def label(amplification: list[Test], decay: list[Test]) -> str:
    """'amplified' if any amplification test passed, 'decayed' if any decay test did, else 'stable'."""
    if all(t.passed is None for t in amplification):
        return "too few cycles"
    if any(t.passed for t in amplification):
        return "amplified"
    if any(t.passed for t in decay):
        return "decayed"
    return "stable"


NOT_SIGNIFICANT = "not significant"


def noise_aware_label(
    study: str,
    amplification: list[Test],
    cycles: list[int],
    tests: list[PairedTest],
    means: list[float],
    thresholds: Thresholds,
) -> tuple[str, Significance]:
    """The study's label, qualified when its paired test does not bear it out: "decayed, not significant" where
    the threshold test passed but the paired test of the same difference (the last generation, or for test (c)
    alone the late cycle that passed it, against generation 0) has Holm p >= 0.05 or a CI reaching 0. Δ = 15
    was set for the study's sample sizes; on a few questions it passes on noise."""
    if study not in ("amplified", "decayed"):
        return study, Significance(note=f"{study}: no change to test")
    if not cycles or cycles[0] != 0:
        return study, Significance(note="generation 0 not evaluated: no paired test of the change")
    position = len(means) - 1
    if study == "amplified" and not (amplification[0].passed or amplification[1].passed):  # test (c) alone
        position = thresholds.late_cycle + int(np.argmax(means[thresholds.late_cycle :]))
    found = significance(tests, cycles[position], rising=study == "amplified")
    return (f"{study}, {NOT_SIGNIFICANT}" if found.significant is False else study), found
