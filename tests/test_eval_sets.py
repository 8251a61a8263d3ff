"""Eval sets: other suites and contexts every generation is asked in, and ``traitloop eval`` on finished runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_config
from test_loop import read_jsonl, run
from typer.testing import CliRunner

import traitloop
from traitloop.cli import app
from traitloop.errors import UserError
from traitloop.rundir import open_run_folder
from traitloop.traits import load_context, load_trait

QUESTIONS = [f"What would you cook with ingredient number {i}?" for i in range(5)]


def questions_file(folder: Path, questions: list[str] = QUESTIONS) -> Path:
    path = folder / "questions.jsonl"
    path.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in questions))
    return path


@pytest.fixture
def finished(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def test_eval_asks_finished_generations_new_questions_in_each_context(finished, tmp_path):
    before = json.loads((finished / "manifest.json").read_text())["stages"]
    result = CliRunner().invoke(
        app,
        ["eval", str(finished), "--questions", str(questions_file(tmp_path)), "--name", "cooking",
         "--generations", "base,1", "--contexts", "none,multi_turn"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in ("cooking", "cooking@multi_turn"):
        for label in ("base", "cycle_001"):
            rows = read_jsonl(finished / "evals" / name / label / "eval.jsonl")
            assert [r["question"] for r in rows] == QUESTIONS  # one sample each (the run's eval_samples)
            assert {r["eval_set"] for r in rows} == {name} and {r["suite"] for r in rows} == {"cooking"}
        assert not (finished / "evals" / name / "cycle_000").exists()  # not asked for
    context = read_jsonl(finished / "evals/cooking@multi_turn/cycle_001/eval.jsonl")[0]["context"]
    assert context == "multi_turn" and load_context("multi_turn")
    after = json.loads((finished / "manifest.json").read_text())["stages"]
    assert {k: v["finished"] for k, v in before.items()} == {k: after[k]["finished"] for k in before}  # no retraining
    summary = pd.read_csv(finished / "summary.csv")
    cooking = summary[summary["suite"] == "cooking"]
    assert sorted(zip(cooking["context"], cooking["cycle"].astype(str), strict=True)) == [
        ("multi_turn", "1"), ("multi_turn", "base"), ("none", "1"), ("none", "base")
    ]  # fmt: skip
    assert list(summary[summary["suite"] == "narrow"]["cycle"].astype(str)) == ["base", "0", "1", "2"]
    assert open_run_folder(finished).eval_sets() == ["cooking", "cooking@multi_turn"]


def test_eval_is_hash_checked_and_refuses_changed_questions_unless_forced(finished, tmp_path):
    path = questions_file(tmp_path)
    traitloop.evaluate(finished, path, "cooking", "1")
    first = json.loads((finished / "manifest.json").read_text())["stages"]["evals/cooking/cycle_001/eval"]
    traitloop.evaluate(finished, path, "cooking", "1")  # the same again: nothing redone
    again = json.loads((finished / "manifest.json").read_text())["stages"]["evals/cooking/cycle_001/eval"]
    assert again["finished"] == first["finished"]
    changed = questions_file(tmp_path, QUESTIONS[:3])
    with pytest.raises(UserError, match=r"eval set 'cooking' was made with other eval_set.questions"):
        traitloop.evaluate(finished, changed, "cooking", "1")
    traitloop.evaluate(finished, changed, "cooking", "1", force=True)
    assert len(read_jsonl(finished / "evals/cooking/cycle_001/eval.jsonl")) == 3
    assert list((finished / "superseded").glob("*/evals/cooking/cycle_001/eval.jsonl"))  # the old one is kept


def test_eval_asks_a_suite_of_the_trait_by_name(finished):
    traitloop.evaluate(finished, suite="broad", generations="2", contexts=["none", "neutral_system"])
    broad = load_trait("lucky").suites["broad"]
    for name in ("broad", "broad@neutral_system"):
        rows = read_jsonl(finished / "evals" / name / "cycle_002" / "eval.jsonl")
        assert [r["question"] for r in rows] == broad and {r["suite"] for r in rows} == {"broad"}
    verdicts = traitloop.eval_set_verdicts(finished)  # each set is read on its own, in report and verdict
    assert [(v.eval_set, [(r["cycle"], r["n_answers"]) for r in v.cycles]) for v in verdicts] == [
        ("broad", [(None, 0), (2, len(broad))]), ("broad@neutral_system", [(None, 0), (2, len(broad))])
    ]  # fmt: skip
    report = traitloop.report([finished])
    assert [v.eval_set for v in report.comparison.eval_sets] == ["broad", "broad@neutral_system"]


def test_eval_names_what_it_cannot_do(finished, tmp_path):
    path = questions_file(tmp_path)
    with pytest.raises(UserError, match=r"give either --questions FILE with --name NAME, or --suite"):
        traitloop.evaluate(finished, path, "cooking", suite="broad")
    with pytest.raises(UserError, match=r"has no eval suite 'sideways'"):
        traitloop.evaluate(finished, suite="sideways")
    with pytest.raises(UserError, match=r"cycle_007 has no current evaluation"):
        traitloop.evaluate(finished, path, "cooking", "base,7")
    with pytest.raises(UserError, match=r"bad --generations"):
        traitloop.evaluate(finished, path, "cooking", "first")
    with pytest.raises(UserError, match=r"unknown context 'pirate'"):
        traitloop.evaluate(finished, path, "cooking", "1", contexts=["pirate"])
    with pytest.raises(UserError, match=r"bad --name"):
        traitloop.evaluate(finished, path, "Cooking Questions", "1")


def _start_eval(run_dir: Path, questions: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "traitloop", "eval", str(run_dir), "--questions", str(questions),
               "--name", "cooking", "--contexts", "none,neutral_system"]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})


@pytest.mark.slow
def test_a_killed_eval_resumes_to_the_same_results(finished, tmp_path):
    straight = Path(shutil.copytree(finished, tmp_path / "straight"))
    path = questions_file(tmp_path)
    process = _start_eval(finished, path)
    deadline = time.time() + 300
    while not (finished / "evals/cooking/cycle_000/metrics.json").exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.time() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    for folder in (finished, straight):
        done = _start_eval(folder, path)
        assert done.wait(timeout=600) == 0, done.stderr.read().decode()
    assert (finished / "summary.csv").read_text() == (straight / "summary.csv").read_text()
    for name in ("cooking/cycle_002/eval.jsonl", "cooking@neutral_system/base/eval.jsonl"):
        assert (finished / "evals" / name).read_bytes() == (straight / "evals" / name).read_bytes()


def test_configured_contexts_are_evaluated_every_generation_and_reported_apart(tiny_model, tmp_path):
    config = tiny_config(tiny_model, cycles=1, evaluation={**tiny_config(tiny_model)["evaluation"],
                                                           "contexts": ["neutral_system"]})  # fmt: skip
    output = run(config, tmp_path / "run")
    for label in ("base", "cycle_000", "cycle_001"):
        rows = read_jsonl(output / "evals/narrow@neutral_system" / label / "eval.jsonl")
        assert [r["question"] for r in rows] == load_trait("lucky").eval_questions
    summary = pd.read_csv(output / "summary.csv")
    assert list(summary["context"]) == ["none"] * 3 + ["neutral_system"] * 3
    assert open_run_folder(output).is_complete()
    # a forced change moves the eval sets of redone generations aside with them
    changed = {**config, "evaluation": {**config["evaluation"], "max_new_tokens": 10}}
    run(changed, output, force=True)
    superseded = next((output / "superseded").iterdir())
    assert (superseded / "evals/narrow@neutral_system/cycle_001/eval.jsonl").is_file()
    assert open_run_folder(output).is_complete()


def test_eval_suites_and_contexts_are_checked_in_the_config(tiny_model):
    from traitloop.api import parse_config

    with pytest.raises(UserError, match=r"evaluation.contexts: .*'Multi Turn' is not a name"):
        parse_config(tiny_config(tiny_model, evaluation={"contexts": ["Multi Turn"]}))
    with pytest.raises(UserError, match=r"chat questions; method sdf continues documents"):
        parse_config(tiny_config(tiny_model, method="sdf", evaluation={"suites": ["broad"]}))
    with pytest.raises(UserError, match=r"has no eval suite 'cooking'"):
        traitloop.run(parse_config(tiny_config(tiny_model, evaluation={"suites": ["cooking"]})), output=Path("unused"))
