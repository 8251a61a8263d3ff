"""Runs read together: sweep reports laid out by the swept fields, two chains tested against each other, the
thresholded rate with any comparison, and verdicts that say when a change is not beyond noise. Every number is
computed from synthetic run folders with known scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from synthetic_runs import write_eval_set, write_run, write_sweep
from typer.testing import CliRunner

from traitloop.analysis import Thresholds, analyze_run, compare_runs, compare_two_runs, load_run, parse_rate
from traitloop.cli import app, console
from traitloop.errors import UserError

GRID = {"seed_examples": [16, 64], "samples_per_cycle": [16, 64]}


def rising(values: dict, seed: int) -> list[float]:
    """Flat from 16 seed examples and 16 samples, faster the more of either; the seed shifts the whole chain."""
    per_cycle = (6.0 if values["seed_examples"] == 64 else 0.0) + (2.0 if values["samples_per_cycle"] == 64 else 0.0)
    start = 30.0 if values["seed_examples"] == 64 else 20.0
    return [15.0, *(start + per_cycle * cycle + seed for cycle in range(5))]


@pytest.fixture()
def sweep(tmp_path: Path) -> Path:
    """A 2 × 2 sweep over seed_examples × samples_per_cycle, two seeds per cell."""
    return write_sweep(tmp_path / "grid", GRID, rising, seeds=(0, 1), evaluation={"bootstrap_resamples": 300})


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_a_sweep_report_is_laid_out_by_the_swept_fields(sweep: Path) -> None:
    result = invoke("report", str(sweep))
    assert result.exit_code == 0, result.output
    assert "seed_examples=64,samples_per_cycle=16,seed=1: amplified" in result.output
    report_folder = sweep / "report_plots"
    assert {"grid.png", "trajectories_0.png", "trajectories_1.png"} <= {p.name for p in report_folder.iterdir()}

    table = pd.read_parquet(sweep / "summary.parquet")
    assert {"seed_examples", "samples_per_cycle", "setting", "cell", "verdict", "rate_rule"} <= set(table.columns)
    labels = sorted(table["setting"].unique())
    assert labels == [
        "seed_examples=16, samples_per_cycle=16", "seed_examples=16, samples_per_cycle=64",
        "seed_examples=64, samples_per_cycle=16", "seed_examples=64, samples_per_cycle=64",
    ]  # fmt: skip
    grid = pd.read_parquet(sweep / "summary_grid.parquet")
    assert grid[["seed_examples", "samples_per_cycle", "runs", "amplified"]].values.tolist() == [
        ["16", "16", 2, 0], ["16", "64", 2, 2], ["64", "16", 2, 2], ["64", "64", 2, 2]
    ]  # fmt: skip
    # 4 cycles of 6 + 2 points each
    last = grid[grid["cell"] == "seed_examples=64, samples_per_cycle=64"].iloc[0]
    assert last["trait_change"] == pytest.approx(32.0, abs=1.0)
    assert last["amplified_ci_low"] == pytest.approx(0.1581, abs=1e-4)

    html = (sweep / "report.html").read_text()
    assert 'id="grid"' in html and "Grid: seed_examples × samples_per_cycle" in html
    grid_html = html[html.index('id="grid"') : html.index("</table>", html.index('id="grid"'))]
    assert grid_html.count('<td class="num">2 of 2<br>') == 3 and grid_html.count('<td class="num">0 of 2<br>') == 1
    assert all(label in html for label in labels)  # each run named by its cell's values


def test_grid_cells_count_with_clopper_pearson_and_fit_an_attractor_each(sweep: Path) -> None:
    from traitloop.api import report

    written = report([sweep])
    comparison = written.comparison
    assert comparison.axes == ["seed_examples", "samples_per_cycle"] and comparison.grid_axes == comparison.axes
    cells = {cell.label: cell for cell in comparison.grid}
    assert len(cells) == 4 and all(len(cell.runs) == 2 for cell in cells.values())
    flat = cells["seed_examples=16, samples_per_cycle=16"]
    assert flat.amplified == 0 and flat.amplified_ci == pytest.approx((0.0, 0.8419), abs=1e-4)
    steep = cells["seed_examples=64, samples_per_cycle=64"]
    low, high = stats.binomtest(2, 2).proportion_ci(method="exact")
    assert steep.amplified == 2 and steep.amplified_ci == pytest.approx((low, high), abs=1e-4)
    runs = [load_run(sweep / "runs" / name) for name in steep.runs]
    differences = [r.question_means("trait", 4).mean() - r.question_means("trait", 0).mean() for r in runs]
    assert steep.trait_change.estimate == pytest.approx(np.mean(differences), abs=1e-3)
    assert steep.coherence_change.estimate == 0.0
    assert [s.setting for s in comparison.settings] == list(cells)  # one attractor fit per cell, not pooled
    assert all(s.attractor.n_runs == 2 for s in comparison.settings)
    assert comparison.runs[0].values == {"seed_examples": 16, "samples_per_cycle": 16}


def test_report_axes_can_be_chosen_and_a_wrong_one_is_named(sweep: Path, tmp_path: Path) -> None:
    result = invoke("report", str(sweep), "--axes", "samples_per_cycle", "-o", str(tmp_path / "one.html"))
    assert result.exit_code == 0, result.output
    grid = pd.read_parquet(tmp_path / "one_grid.parquet")
    assert grid["cell"].tolist() == ["samples_per_cycle=16", "samples_per_cycle=64"]
    assert grid["runs"].tolist() == [4, 4]  # seed_examples pooled within each cell
    result = invoke("report", str(sweep), "--axes", "cycles")
    assert result.exit_code == 2
    assert "do not vary (they vary: seed_examples, samples_per_cycle)" in " ".join(result.output.split())


@pytest.fixture()
def seeded_and_control(tmp_path: Path) -> tuple[Path, Path]:
    seeded = write_run(tmp_path / "seeded", [15.0, 40.0, 45.0, 50.0], coherence=[90, 85, 80, 75], noise=4.0)
    control = write_run(tmp_path / "control", [15.0, 15.0, 16.0, 15.0], noise=4.0, seed=1, seed_examples=0)
    return seeded, control


def test_compare_prints_per_generation_paired_tests(seeded_and_control, monkeypatch) -> None:
    seeded, control = seeded_and_control
    monkeypatch.setattr(console, "width", 160)
    result = invoke("compare", str(seeded), str(control))
    assert result.exit_code == 0, result.output
    rows = [line.split("│")[1:-1] for line in result.output.splitlines() if line.count("│") > 8]
    cells = [[c.strip() for c in row] for row in rows]
    assert [(c[0], c[1]) for c in cells] == [(m, g) for m in ("trait", "coherence") for g in ("0", "1", "2")]

    compared = compare_two_runs(load_run(seeded), load_run(control))
    assert compared.generations == [0, 1, 2] and compared.n_questions == 16
    trait = [t for t in compared.tests if t.measure == "trait"]
    a, b = load_run(seeded).question_means("trait", 2), load_run(control).question_means("trait", 2)
    assert trait[2].mean_difference == pytest.approx((a - b).mean(), abs=1e-3)
    assert trait[2].p_value == pytest.approx(stats.wilcoxon((a - b).to_numpy()).pvalue)
    assert all(t.p_holm >= t.p_value for t in trait) and trait[2].rank_biserial == 1.0
    coherence = [t for t in compared.tests if t.measure == "coherence"]
    assert [t.mean_difference for t in coherence] == [-5.0, -10.0, -15.0]

    only = compare_two_runs(load_run(seeded), load_run(control), [2, None])
    assert only.generations == [2, None] and only.tests[1].generation is None and only.tests[1].n_questions == 16
    as_json = json.loads(invoke("compare", str(seeded), str(control), "--generations", "1", "--json").output)
    assert as_json["generations"] == [1] and len(as_json["tests"]) == 2


def test_compare_refuses_runs_that_asked_different_questions(seeded_and_control, tmp_path: Path) -> None:
    seeded, _ = seeded_and_control
    fewer = write_run(tmp_path / "fewer", [15.0, 20.0, 20.0, 20.0], questions=12)
    result = invoke("compare", str(seeded), str(fewer))
    assert result.exit_code == 2
    assert "seeded and fewer asked different questions (16 and 12; question 12" in " ".join(result.output.split())
    with pytest.raises(UserError, match="not evaluated in both"):
        compare_two_runs(load_run(seeded), load_run(seeded_and_control[1]), [7])


def test_a_report_of_two_runs_compares_them_question_by_question(seeded_and_control, tmp_path: Path) -> None:
    from traitloop.api import report

    written = report(list(seeded_and_control), output=tmp_path / "two.html")
    assert written.comparison.between is not None and written.comparison.axes == ["seed_examples"]
    html = written.html.read_text()
    assert 'id="between"' in html and "seeded against control" in html


def test_the_rate_takes_any_comparison(tmp_path: Path) -> None:
    # generation 1: half the questions at trait 10, half at 60; coherence 90 throughout
    folder = write_run(tmp_path / "run", [15.0, 40.0, [10.0] * 8 + [60.0] * 8], coherence=[90.0, 90.0, 90.0])
    result = invoke("verdict", str(folder), "--json", "--rate", "trait<30, coherence>50")
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.output)
    assert verdict["thresholds"]["rate"] == "trait<30,coherence>50"
    assert [row["rate_mean"] for row in verdict["cycles"]] == [1.0, 0.0, 0.5]
    assert analyze_run(load_run(folder)).cycles[2]["rate_mean"] == 0.5  # the default: trait>=50,coherence>=50
    assert analyze_run(load_run(folder), Thresholds(rate="coherence>95")).cycles[2]["rate_mean"] == 0.0

    result = invoke("report", str(folder), "--rate", "trait<=10,coherence>=90")
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(folder / "summary.parquet")
    assert table["rate_rule"].unique().tolist() == ["trait<=10,coherence>=90"]
    assert table["rate_mean"].tolist() == [0.0, 0.0, 0.5]


@pytest.mark.parametrize(
    ("rate", "message"),
    [
        ("trait=<30", "'trait=<30' is not MEASURE OP NUMBER"),
        ("trait<30,coherence>>50", "'coherence>>50' is not MEASURE OP NUMBER"),
        ("loyalty<30", "'loyalty<30' names no measure 'loyalty'"),
        ("trait<30,", "'' is not MEASURE OP NUMBER"),
        ("trait<30,trait<20", "trait is given twice in the same direction"),
    ],
)
def test_a_bad_rate_names_its_bad_part(tmp_path: Path, rate: str, message: str) -> None:
    with pytest.raises(UserError, match="bad rate") as error:
        parse_rate(rate)
    assert message in str(error.value)
    folder = write_run(tmp_path / "run", [15.0, 40.0])
    result = invoke("verdict", str(folder), "--rate", rate)
    assert result.exit_code == 2 and message in " ".join(result.output.split())
    assert parse_rate("trait > 20, trait < 80")[1].op == "<"  # a band is two conditions on one measure


def test_a_fall_on_four_questions_that_is_not_significant_says_so(tmp_path: Path, monkeypatch) -> None:
    """Re-evaluated on 4 questions, 1 answer each: a 20-point fall passes Δ = 15, but 4 questions cannot make a
    Wilcoxon p below 0.125; the verdict says "not significant", with the study's rule beside it."""
    folder = write_run(tmp_path / "run", [50.0, 60.0, 35.0], noise=2.0)  # main: a 25-point fall on 16 questions
    write_eval_set(folder, "four", {None: 50.0, 0: 50.0, 1: 30.0}, questions=4)
    main = analyze_run(load_run(folder))
    assert main.verdict == main.study_verdict == "decayed" and main.significance.significant is True
    four = analyze_run(load_run(folder, "four"))
    assert (four.study_verdict, four.verdict) == ("decayed", "decayed, not significant")
    assert four.significance.mean_difference == -20.0 and four.significance.p_holm >= 0.05

    monkeypatch.setattr(console, "width", 160)
    result = invoke("verdict", str(folder))
    assert result.exit_code == 0, result.output
    assert "decayed, not significant" in result.output  # the eval sets' table
    full = json.loads(invoke("verdict", str(folder), "--json").output)
    assert [(v["eval_set"], v["verdict"], v["study_verdict"]) for v in full["eval_sets"]] == [
        ("four", "decayed, not significant", "decayed")
    ]
    result = invoke("verdict", str(folder), "--eval-set", "four")
    text = " ".join(result.output.split())
    assert "decayed, not significant (study's rule: decayed)" in text and "not significant" in text
    result = invoke("report", str(folder))
    assert "run on four: decayed, not significant (study's rule: decayed)" in " ".join(result.output.split())
    assert "study's rule: decayed" in (folder / "report.html").read_text()


def test_a_field_holding_a_list_can_be_an_axis(tmp_path: Path) -> None:
    runs = [
        load_run(write_run(tmp_path / name, [15.0, 20.0, 21.0], report_to=trackers))
        for name, trackers in (("none", []), ("tensorboard", ["tensorboard"]))
    ]
    comparison = compare_runs(runs)
    assert comparison.axes == ["report_to"]
    assert [cell.label for cell in comparison.grid] == ["report_to=[]", 'report_to=["tensorboard"]']
