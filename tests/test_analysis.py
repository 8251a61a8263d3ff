"""Statistics, verdicts and the attractor fit, against exact values on hand-made score tables."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_runs import attractor_chain, write_run

from traitloop.analysis import Thresholds, analyze_run, compare_runs, fit_attractor, load_run, load_runs
from traitloop.analysis._verdict import (
    amplification_tests,
    decay_tests,
    idempotence_index,
    label,
    mean_prefix_slope,
    noise_floor_steps,
    share_beyond_floor,
    trend_after_seed,
)
from traitloop.rundir import git_hash

DEFAULTS = Thresholds()
CONSTANT = [50.0] * 6
DECAYING = [60.0, 50.0, 40.0, 30.0, 20.0, 10.0]
AMPLIFYING = [20.0, 25.0, 30.0, 35.0, 40.0, 45.0]
ONE_SPIKE = [30.0, 30.0, 30.0, 30.0, 30.0, 60.0]


def values(tests) -> list[float | None]:
    return [t.value for t in tests]


def passed(tests) -> list[bool | None]:
    return [t.passed for t in tests]


def test_constant_scores_pass_no_test() -> None:
    tests = amplification_tests(CONSTANT, DEFAULTS)
    assert values(tests) == [0.0, 0.0, 0.0]
    assert passed(tests) == [False, False, False]
    assert label(tests, decay_tests(CONSTANT, DEFAULTS)) == "stable"


def test_decaying_scores() -> None:
    tests = amplification_tests(DECAYING, DEFAULTS)
    assert values(tests) == [-50.0, -10.0, -40.0]
    decay = decay_tests(DECAYING, DEFAULTS)
    assert values(decay) == [50.0, 10.0]
    assert label(tests, decay) == "decayed"


def test_a_one_cycle_wobble_is_stable_and_a_one_cycle_fall_of_delta_decayed() -> None:
    """Over two generations a slope is only the difference: held to s (1.67) instead of Δ, it would call a
    non-significant 2.9-point wobble (a generated trait's demo run: 56.2 then 53.3) decayed."""
    wobble = [56.2, 53.3]
    tests, decay = amplification_tests(wobble, DEFAULTS), decay_tests(wobble, DEFAULTS)
    assert passed(tests) == [False, None, None] and passed(decay) == [False, None]
    assert label(tests, decay) == "stable"
    fall = [32.1, 4.8]
    assert label(amplification_tests(fall, DEFAULTS), decay_tests(fall, DEFAULTS)) == "decayed"
    assert mean_prefix_slope([10.0, 12.0, 20.0]) == pytest.approx((2.0 + 5.0) / 2)


def test_amplifying_scores_pass_every_test() -> None:
    tests = amplification_tests(AMPLIFYING, DEFAULTS)
    assert values(tests) == [25.0, 5.0, 25.0]
    assert passed(tests) == [True, True, True]
    assert label(tests, decay_tests(AMPLIFYING, DEFAULTS)) == "amplified"


def test_one_late_spike_moves_the_prefix_slope_little() -> None:
    # Prefixes of 2-5 cycles are flat (slope 0); the full series has slope 75 / 17.5.
    assert mean_prefix_slope(ONE_SPIKE) == pytest.approx((75 / 17.5) / 5)
    tests = amplification_tests(ONE_SPIKE, DEFAULTS)
    assert passed(tests) == [True, False, True]


def test_thresholds_are_configurable_and_reported() -> None:
    strict = Thresholds(delta=30.0, slope=6.0, late_cycle=5)
    tests = amplification_tests(AMPLIFYING, strict)
    assert [t.threshold for t in tests] == [30.0, 6.0, 30.0]
    assert passed(tests) == [False, False, False]
    assert tests[2].name == "late_cycle_excess (cycles >= 5)"


def test_short_runs_cannot_pass_the_late_cycle_test() -> None:
    tests = amplification_tests([20.0, 40.0, 60.0], DEFAULTS)
    assert passed(tests) == [True, True, None]
    assert label(amplification_tests([20.0], DEFAULTS), []) == "too few cycles"


def test_noise_floor_per_step() -> None:
    steps = noise_floor_steps([50.0, 53.0, 52.0, 70.0], [2.0, 2.0, 0.0, 0.0])
    floor = math.sqrt(8) * math.sqrt(2 / math.pi)
    assert [s.floor for s in steps] == [round(floor, 4), round(2 * math.sqrt(2 / math.pi), 4), 0.0]
    assert [s.change for s in steps] == [3.0, -1.0, 18.0]
    assert [s.exceeds for s in steps] == [True, False, True]
    assert share_beyond_floor(steps) == 0.5  # only steps 1→2 and 2→3 count


def test_idempotence_index_with_identical_questions_has_a_point_ci() -> None:
    matrix = np.tile([50.0, 40.0, 45.0, 35.0], (8, 1))
    index = idempotence_index(matrix, resamples=200, seed=0)
    assert (index.estimate, index.ci_low, index.ci_high) == (5.0, 5.0, 5.0)
    assert idempotence_index(matrix[:, :2], 200, 0).estimate is None


def test_trend_after_seed_ignores_cycle_zero() -> None:
    trend = trend_after_seed([90.0, 40.0, 35.0, 30.0, 25.0])
    assert trend.slope == -5.0
    assert trend.ci_low == trend.ci_high == -5.0  # a perfect line has no residual error
    assert trend.kendall_tau == -1.0
    assert trend.mann_kendall_p == pytest.approx(2 / 24, abs=1e-4)  # exact: 2 of 4! orderings as extreme


def test_attractor_fit_recovers_a_known_map_exactly() -> None:
    chain = attractor_chain(90.0, intercept=20.0, slope=0.6, cycles=6)
    fit = fit_attractor([np.tile(chain, (16, 1))], resamples=200)
    assert fit.intercept == pytest.approx(20.0, abs=1e-3)
    assert fit.slope == pytest.approx(0.6, abs=1e-4)
    assert fit.fixed_point == pytest.approx(50.0, abs=1e-2)
    assert fit.slope_ci == pytest.approx((0.6, 0.6), abs=1e-4)
    assert fit.converges and fit.n_pairs == 6


def test_attractor_fit_pooled_over_noisy_runs_covers_the_truth(tmp_path: Path) -> None:
    runs = [
        load_run(write_run(tmp_path / f"r{i}", [20.0, *attractor_chain(start, 20.0, 0.6, 6)], noise=4.0, seed=i))
        for i, start in enumerate([90.0, 10.0, 70.0])
    ]
    fit = fit_attractor([run.question_matrix("trait") for run in runs], resamples=500)
    assert fit.n_runs == 3 and fit.n_pairs == 18
    assert fit.slope_ci[0] <= 0.6 <= fit.slope_ci[1]
    assert fit.fixed_point_ci[0] <= 50.0 <= fit.fixed_point_ci[1]
    assert abs(fit.slope - 0.6) < 0.1


def test_diverging_map_has_no_fixed_point() -> None:
    fit = fit_attractor([np.tile(attractor_chain(10.0, 2.0, 1.5, 4), (4, 1))], resamples=100)
    assert fit.slope == pytest.approx(1.5) and fit.fixed_point is None and not fit.converges


def test_run_verdict_from_a_run_folder(tmp_path: Path) -> None:
    folder = write_run(tmp_path / "amp", [10.0, *AMPLIFYING], coherence=[90.0, 88, 86, 84, 82, 80, 78])
    verdict = analyze_run(load_run(folder))
    assert verdict.verdict == "amplified"
    assert [row["trait_mean"] for row in verdict.cycles] == [10.0, *AMPLIFYING]
    assert verdict.cycles[0]["cycle"] is None and verdict.cycles[1]["cycle"] == 0
    assert verdict.tradeoff.trait_change == [10.0, 15.0, 20.0, 25.0, 30.0, 35.0]
    assert verdict.tradeoff.pearson_r == -1.0  # every trait point gained cost 0.4 coherence points
    assert verdict.idempotence.estimate == 12.5  # |35-25|, |40-25| … |45-25| → mean of 5, 10, 15, 20
    assert verdict.git_hash == git_hash()  # the code that recorded its stages, not the header's "0" * 40


def test_replicates_are_grouped_by_everything_but_the_seed_and_named_by_what_differs(tmp_path: Path) -> None:
    runs = [load_run(write_run(tmp_path / f"s{s}", [10.0, *AMPLIFYING], seed=s)) for s in range(3)]
    runs.append(load_run(write_run(tmp_path / "flat", [10.0, *CONSTANT], regime="continual")))
    comparison = compare_runs(runs)
    assert comparison.axes == ["regime"]  # the seed makes replicates, not an axis
    groups = {g.setting: g for g in comparison.replication}
    assert groups["regime=reinit"].runs == ["s0", "s1", "s2"]
    assert groups["regime=reinit"].amplified == 3
    assert groups["regime=continual"].verdicts == ["stable"]
    assert [s.setting for s in comparison.settings] == ["regime=reinit", "regime=continual"]
    assert compare_runs(runs[:3]).runs[0].setting == "lucky sft-reinit"  # replicates alone: no field differs


def test_load_runs_gives_one_row_per_run_and_generation(tmp_path: Path) -> None:
    folders = [write_run(tmp_path / f"s{s}", [10.0, 20.0, 30.0], seed=s) for s in range(2)]
    table = load_runs(folders)
    assert len(table) == 6
    assert table["cycle"].tolist()[:3] == [pd.NA, 0, 1]
    assert table.loc[table["cycle"] == 1, "trait_mean"].tolist() == [30.0, 30.0]
    assert {"run", "seed", "method", "regime", "trait_ci_low", "coherence_mean", "trait_se"} <= set(table.columns)


def test_not_a_run_folder_is_a_clear_error(tmp_path: Path) -> None:
    from traitloop.errors import UserError

    with pytest.raises(UserError, match="not a traitloop run folder"):
        load_run(tmp_path)
