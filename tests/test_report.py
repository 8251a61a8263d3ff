"""The report: a self-contained HTML file and PNG plots, opened in headless Chromium like a reader would."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from synthetic_runs import attractor_chain, record_stages, write_eval_set, write_run, write_sweep
from typer.testing import CliRunner

from traitloop.analysis import load_eval_sets, load_run, write_report
from traitloop.cli import app, console
from traitloop.rundir import Manifest

ARTIFACTS = Path(os.environ.get("TRAITLOOP_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTILE_ANSWER = "<script>window.hacked = 1</script> & lucky"


@pytest.fixture()
def two_settings(tmp_path: Path) -> list[Path]:
    """Two seeds of an amplifying setting and one decaying run: enough for every section of a comparison."""
    folders = [
        write_run(tmp_path / f"amp-s{s}", [15.0, *attractor_chain(30.0, 20.0, 0.9, 5)], noise=3.0, seed=s)
        for s in range(2)
    ]
    folders.append(write_run(tmp_path / "decay", [15.0, *attractor_chain(60.0, 5.0, 0.6, 5)], regime="continual"))
    eval_file = folders[0] / "cycle_002" / "eval.jsonl"
    eval_file.write_text(eval_file.read_text().replace("Answer 0 to question 3,", HOSTILE_ANSWER.replace('"', "")))
    record_stages(Manifest(folders[0] / "manifest.json"), folders[0], "cycle_002")  # as if evaluated so
    return folders


def test_single_run_report_writes_html_plots_and_table(tmp_path: Path) -> None:
    folder = write_run(tmp_path / "run", [10.0, 20.0, 25.0, 30.0, 36.0, 41.0, 45.0], noise=2.0)
    report = write_report([load_run(folder)], folder / "report.html")
    assert report.html == folder / "report.html"
    assert sorted(p.name for p in (folder / "plots").iterdir()) == [
        "cobweb_0.png",
        "scores_by_cycle.png",
        "tradeoff.png",
    ]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in report.plots)
    html = report.html.read_text()
    assert html.count("data:image/png;base64,") == 3
    assert not re.search(r'(src|href)="(?!data:)', html), "the report must not load anything from outside"
    assert "amplified" in html
    assert (folder / "summary.parquet").is_file()


def test_model_answers_are_escaped(two_settings: list[Path], tmp_path: Path) -> None:
    html = write_report([load_run(f) for f in two_settings], tmp_path / "cmp.html").html.read_text()
    assert "&lt;script&gt;window.hacked" in html
    assert "<script>window.hacked" not in html


def test_report_of_a_real_run(finished_run: Path) -> None:
    report = write_report([load_run(finished_run)], finished_run / "report.html")
    assert report.comparison.runs[0].cycles[0]["trait_n_scored"] > 0
    assert "Sample browser" in report.html.read_text()


def test_cli_report_compare_and_verdict_json(two_settings: list[Path], tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cmp.html"
    result = runner.invoke(app, ["report", *map(str, two_settings), "-o", str(out), "--delta", "10"])
    assert result.exit_code == 0, result.output
    assert "amp-s0: amplified" in result.output and "decay: decayed" in result.output
    assert (tmp_path / "cmp_plots" / "runs_overlaid.png").is_file()
    assert (tmp_path / "cmp.parquet").is_file()
    assert "2 of 2" in out.read_text()  # both seeds of the amplifying setting replicate

    result = runner.invoke(app, ["verdict", str(two_settings[2]), "--json"])
    assert result.exit_code == 0, result.output
    assert '"verdict": "decayed"' in result.output and '"delta": 15.0' in result.output


def test_cli_verdict_prints_paired_tests_and_takes_the_rate_cutoffs(two_settings: list[Path]) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["verdict", str(two_settings[2]), "--trait-at-least", "60", "--coherence-at-least", "95"]
    )
    assert result.exit_code == 0, result.output
    assert "paired tests over questions" in result.output and "│ gen 0 │" in result.output
    result = runner.invoke(app, ["verdict", str(two_settings[2]), "--json", "--trait-at-least", "60"])
    assert '"rate": "trait>=60,coherence>=50"' in result.output and '"paired_tests": [' in result.output
    assert '"rate_mean": 0.0' in result.output  # coherence 90 passes, but the decayed trait stays under 60


@pytest.fixture()
def run_with_eval_sets(tmp_path: Path) -> Path:
    """Amplified on its main (narrow) questions; flat on the broad suite; broad after unrelated turns asked of
    the base model and the last generation only."""
    folder = write_run(tmp_path / "persists", [15.0, 30.0, 45.0, 60.0, 75.0], noise=2.0)
    write_eval_set(folder, "broad", {None: 15.0, 0: 16.0, 1: 15.0, 2: 16.0, 3: 15.5})
    return write_eval_set(folder, "broad@multi_turn", {None: 15.0, 3: 40.0})


def test_each_eval_set_gets_its_own_verdict_in_verdict_and_report(
    run_with_eval_sets: Path, tmp_path: Path, monkeypatch
) -> None:
    runner = CliRunner()
    monkeypatch.setattr(console, "width", 160)  # one table row per line
    result = runner.invoke(app, ["verdict", str(run_with_eval_sets)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "persists (lucky sft-reinit): amplified" in output and "other eval sets" in output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 4}
    assert "stable" in lines["broad"] and "base, 0, 1, 2, 3" in lines["broad"]
    assert "base, 3" in lines["broad@multi_turn"] and "15.0 / n/a / 40.0" in lines["broad@multi_turn"]

    result = runner.invoke(app, ["verdict", str(run_with_eval_sets), "--eval-set", "broad", "--json"])
    verdict = json.loads(result.output)
    assert verdict["eval_set"] == "broad" and verdict["verdict"] == "stable"
    assert [row["cycle"] for row in verdict["cycles"]] == [None, 0, 1, 2, 3]
    assert verdict["cycles"][4]["trait_mean"] == pytest.approx(15.5)
    result = runner.invoke(app, ["verdict", str(run_with_eval_sets), "--eval-set", "sideways"])
    assert result.exit_code == 2 and "has no eval set 'sideways' (it has: broad, broad@multi_turn)" in " ".join(
        result.output.split()
    )

    result = runner.invoke(app, ["report", str(run_with_eval_sets)])
    assert result.exit_code == 0, result.output
    assert (
        "persists on broad: stable" in result.output and "persists on broad@multi_turn: too few cycles" in result.output
    )
    report = write_report(
        [load_run(run_with_eval_sets)], tmp_path / "report.html", eval_sets=load_eval_sets(run_with_eval_sets)
    )
    assert [(v.eval_set, v.verdict) for v in report.comparison.eval_sets] == [
        ("broad", "stable"), ("broad@multi_turn", "too few cycles")
    ]  # fmt: skip
    html = report.html.read_text()
    assert 'id="eval-sets"' in html and "broad@multi_turn" in html
    table = pd.read_parquet(report.table)
    assert sorted(table["eval_set"].fillna("main").unique()) == ["broad", "broad@multi_turn", "main"]
    assert len(table[table["eval_set"] == "broad@multi_turn"]) == 2


def test_cli_report_on_a_missing_run_names_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "nope is not a traitloop run folder" in " ".join(result.output.split())


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("TRAITLOOP_REQUIRE_BROWSER"), reason="Debian chromium not installed"
)
def test_report_renders_in_chromium_and_the_sample_browser_filters(two_settings: list[Path], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    report = write_report([load_run(f) for f in two_settings], tmp_path / "cmp.html")
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(report.html.as_uri())
        total = len(two_settings) * 7 * 16 * 3
        assert page.inner_text("#sample-count") == f"{total} of {total} answers shown"
        assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        assert page.evaluate("window.hacked === undefined")

        page.fill("#sample-search", "answer 2 to question 7,")
        assert page.inner_text("#sample-count") == f"{len(two_settings) * 7} of {total} answers shown"
        page.fill("#sample-search", "")
        page.click("#samples th:nth-child(5)")  # trait, ascending
        page.click("#samples th:nth-child(5)")  # trait, descending
        first_trait = float(page.inner_text("#samples tbody tr:first-child td:nth-child(5)"))
        assert first_trait == max(
            float(x)
            for x in page.eval_on_selector_all(
                "#samples tbody td:nth-child(5)", "cells => cells.map(c => c.textContent)"
            )
        )

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report-samples.png"))
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(ARTIFACTS / "report-top.png"))
        browser.close()
    assert errors == []


# Every table's container, and the page, scroll sideways by this many pixels (0: none does).
OVERFLOW = """() => [document.documentElement, ...document.querySelectorAll('.wrap')]
    .map(e => [e.querySelector('table')?.id || e.querySelector('table')?.className || 'page',
               e.scrollWidth - e.clientWidth])
    .filter(([, over]) => over > 0)"""
# Cells that show nothing, or an empty pair of brackets, instead of saying why a value is missing.
BLANK_CELLS = """() => Array.from(document.querySelectorAll('td'))
    .map(c => c.innerText.trim())
    .filter(t => t === '' || t.includes('()') || t.includes('[]') || t.includes('[, ]') || t === 'None')"""


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("TRAITLOOP_REQUIRE_BROWSER"), reason="Debian chromium not installed"
)
@pytest.mark.parametrize("kind", ["comparison", "short run", "sweep", "two runs"])
def test_report_fits_a_laptop_screen_and_no_cell_is_blank(two_settings: list[Path], tmp_path: Path, kind: str) -> None:
    """At 1366 px no table scrolls sideways, and every cell without a value says why (too few cycles, no
    replicates, not recorded), for a comparison with every section, a run too short for most tests, a 2 × 2 sweep
    (its grid, and a verdict that is not significant) and two runs compared question by question."""
    from playwright.sync_api import sync_playwright

    if kind == "comparison":
        with_projections = write_run(
            tmp_path / "a-run-with-a-rather-long-name-and-persona-projections",
            [15.0, 40.0, 45.0, 52.0, 60.0, 66.0, 70.0],
            projection=[0.5, 2.0, 2.2, 2.6, 3.1, 3.3, 3.9],
            prompt_projection=[0.1, 0.9, 1.0, 1.1, 1.6, 1.5, 1.9],
            training={"examples": 64, "steps": 24, "tokens": 11520},
            seed=7,
        )
        write_eval_set(with_projections, "broad@neutral_system", {None: 15.0, 0: 20.0, 5: 18.0})
        write_eval_set(with_projections, "a-question-file-with-a-long-name@multi_turn", {None: 15.0})
        runs = [load_run(f) for f in [*two_settings, with_projections]]
        eval_sets = load_eval_sets(with_projections)
    elif kind == "sweep":
        chain = lambda values, seed: [15.0, *attractor_chain(20.0 + values["seed_examples"] / 4, 10.0, 0.8, 4)]  # noqa: E731
        sweep = write_sweep(tmp_path / "sweep", {"seed_examples": [16, 64], "samples_per_cycle": [16, 64]}, chain,
                            seeds=(0, 1), evaluation={"bootstrap_resamples": 200})  # fmt: skip
        folders = sorted(p for p in (sweep / "runs").iterdir())
        write_eval_set(folders[0], "four-questions", {None: 50.0, 0: 50.0, 1: 30.0}, questions=4)
        runs, eval_sets = [load_run(f) for f in folders], load_eval_sets(folders[0])
    elif kind == "two runs":
        runs, eval_sets = [load_run(two_settings[0]), load_run(two_settings[2])], []
    else:
        runs, eval_sets = [load_run(write_run(tmp_path / "short", [15.0, 40.0]))], []  # base and generation 0 only
    report = write_report(runs, tmp_path / "report.html", eval_sets=eval_sets)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(report.html.as_uri())
        assert page.evaluate(OVERFLOW) == []
        assert page.evaluate(BLANK_CELLS) == []
        assert page.locator("#verdicts td").count() > 0 and page.locator("#replication td").count() > 0
        sets = {"comparison": 3, "sweep": 2}.get(kind, 0)
        assert page.locator("#eval-sets tr").count() == sets  # a header and each set
        assert page.locator("#grid td").count() > 0 if kind in ("comparison", "sweep", "two runs") else True
        assert page.locator("#between tr").count() == (1 + 2 * 6 if kind == "two runs" else 0)  # trait, coherence
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"report-1366-{kind.replace(' ', '-')}.png"), full_page=False)
        browser.close()
    html = report.html.read_text()
    if kind == "short run":
        assert "n/a: needs generation 1" in html and "n/a: no replicates: one run with this config" in html
        assert "n/a: needs 3 self-trained cycles" in html and "tokens not recorded" in html
    elif kind == "sweep":
        assert "decayed, not significant" in html and "Grid: seed_examples × samples_per_cycle" in html
    elif kind == "comparison":
        assert "11,520 tokens" in html and "prompt projection [95% CI]" in html
        assert "n/a: only the base model evaluated" in html and "n/a: generation 0 not evaluated" in html
