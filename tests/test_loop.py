"""The whole loop on the tiny model: run directory, resume, config-change refusal, kill-and-resume."""

from __future__ import annotations

import io
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
import yaml
from conftest import tiny_config
from rich.console import Console
from safetensors.torch import load_file

import traitloop
from traitloop.analysis import analyze_run, load_run
from traitloop.api import parse_config
from traitloop.errors import UserError
from traitloop.rundir import recorded_git_hashes


def run(config: dict, output: Path, force: bool = False) -> Path:
    return traitloop.run(parse_config(config), output=output, force=force)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_directory_has_every_artifact(finished_run):
    for name in ("config.yaml", "manifest.json", "summary.csv", "base/eval.jsonl", "base/metrics.json"):
        assert (finished_run / name).is_file(), name
    for cycle in range(3):
        folder = finished_run / f"cycle_{cycle:03d}"
        for name in (
            "train.jsonl",
            "adapter/adapter_model.safetensors",
            "adapter/adapter_config.json",
            "eval.jsonl",
            "metrics.json",
        ):
            assert (folder / name).is_file(), f"{folder.name}/{name}"
    assert not list(finished_run.rglob("*.tmp")) and not list(finished_run.rglob("*.partial"))


def test_manifest_records_environment_seeds_trait_and_stages(finished_run):
    manifest = json.loads((finished_run / "manifest.json").read_text())
    assert manifest["seed"] == 0
    assert manifest["trait"]["name"] == "lucky" and len(manifest["trait"]["hash"]) == 16
    assert manifest["environment"]["packages"]["torch"].startswith("2.13.0")
    assert "git_hash" in manifest["environment"]
    expected = {"base/eval"} | {f"cycle_{c:03d}/{k}" for c in range(3) for k in ("data", "train", "eval")}
    assert set(manifest["stages"]) == expected
    assert all(s["status"] == "done" and s["inputs_hash"] for s in manifest["stages"].values())
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert config["cycles"] == 2 and config["trait"] == "lucky"


def test_a_run_resumed_by_other_code_keeps_the_commit_that_made_each_stage(
    tiny_model, finished_run, tmp_path, monkeypatch
):
    """Reopening a run must not relabel its results: the header keeps the session that began the run, each
    stage the commit that made it, and the analysis lists every commit the run's stages came from."""
    run = tmp_path / "resumed"
    shutil.copytree(finished_run, run)
    manifest = json.loads((run / "manifest.json").read_text())
    began = manifest["environment"]["git_hash"]
    for name, record in manifest["stages"].items():
        record["status"] = "killed" if name.startswith("cycle_002") else record["status"]
    (run / "manifest.json").write_text(json.dumps(manifest))

    monkeypatch.setattr(traitloop.rundir._manifest, "git_hash", lambda: "f" * 40)  # a newer checkout
    traitloop.run(parse_config(tiny_config(tiny_model)), output=run, console=Console(file=io.StringIO()))

    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["environment"]["git_hash"] == began
    made = {name: record["git_hash"] for name, record in manifest["stages"].items()}
    assert {made[name] for name in made if name.startswith("cycle_002")} == {"f" * 40}
    assert {made[name] for name in made if not name.startswith("cycle_002")} == {began}
    assert recorded_git_hashes(manifest) == [began, "f" * 40]
    assert analyze_run(load_run(run)).git_hash == f"{began}, {'f' * 40}"


def test_runs_recorded_before_stages_carried_their_commit_read_the_header_commit():
    began, newer = "a" * 40, "b" * 40
    header = {"environment": {"git_hash": began}}
    assert recorded_git_hashes(header | {"stages": {"base/eval": {}, "cycle_000/eval": {"git_hash": newer}}}) == [
        began,
        newer,
    ]
    assert recorded_git_hashes(header | {"stages": {}}) == [began]
    assert recorded_git_hashes({"stages": {"base/eval": {}}}) == []


def test_cycle_data_comes_from_the_previous_generation_on_disjoint_prompts(finished_run):
    seed_rows = read_jsonl(finished_run / "cycle_000/train.jsonl")
    assert len(seed_rows) == 8 and {r["source"] for r in seed_rows} == {"seed"}
    prompts = []
    for cycle in (1, 2):
        rows = read_jsonl(finished_run / f"cycle_{cycle:03d}/train.jsonl")
        assert rows and {r["source"] for r in rows} == {f"cycle_{cycle - 1:03d}"}
        prompts.append({r["messages"][0]["content"] for r in rows})
    assert not prompts[0] & prompts[1]
    questions = set(traitloop.traits.load_trait("lucky").eval_questions)
    assert not (prompts[0] | prompts[1]) & questions


def test_eval_rows_and_metrics(finished_run):
    rows = read_jsonl(finished_run / "cycle_001/eval.jsonl")
    assert len(rows) == 16  # 16 eval questions x 1 sample
    for row in rows:
        assert row["schema_version"] == 2 and row["cycle"] == 1
        for key in ("trait_score", "coherence_score"):
            assert row[key] is None or 0 <= row[key] <= 100
        assert isinstance(row["projection"], float) and isinstance(row["prompt_projection"], float)
        assert row["trait_judge"].startswith("embedded-trait/lucky")
    metrics = json.loads((finished_run / "cycle_001/metrics.json").read_text())
    assert metrics["projection"]["n_scored"] == 16 and set(metrics["persona"]) == {"layer", "auroc", "direction"}
    by_question = {}
    for row in rows:  # every answer to one question shares the question's projection before answering
        assert by_question.setdefault(row["question"], row["prompt_projection"]) == row["prompt_projection"]
    trait = metrics["trait"]
    assert trait["ci_low"] <= trait["mean"] <= trait["ci_high"]
    assert metrics["training"]["examples"] == len(read_jsonl(finished_run / "cycle_001/train.jsonl"))
    summary = pd.read_csv(finished_run / "summary.csv")
    assert list(summary["cycle"].astype(str)) == ["base", "0", "1", "2"]
    assert summary.loc[2, "trait_mean"] == pytest.approx(trait["mean"])


def test_rerun_skips_every_finished_stage(finished_run, tiny_model):
    before = json.loads((finished_run / "manifest.json").read_text())["stages"]
    run(tiny_config(tiny_model), finished_run)
    after = json.loads((finished_run / "manifest.json").read_text())["stages"]
    assert {k: v["finished"] for k, v in after.items()} == {k: v["finished"] for k, v in before.items()}


def test_changed_config_is_refused_naming_the_field_then_forced(tiny_model, tmp_path):
    output = run(tiny_config(tiny_model, cycles=1), tmp_path / "run")
    changed = tiny_config(tiny_model, cycles=1, generation={"max_new_tokens": 10, "batch_size": 8})
    with pytest.raises(UserError, match=r"'generation.max_new_tokens' affects cycle 1 onward"):
        run(changed, output)
    before = json.loads((output / "manifest.json").read_text())["stages"]
    run(changed, output, force=True)
    after = json.loads((output / "manifest.json").read_text())["stages"]
    for stage in ("base/eval", "cycle_000/data", "cycle_000/train", "cycle_000/eval"):
        assert after[stage]["finished"] == before[stage]["finished"], stage
    assert after["cycle_001/data"]["inputs"]["config"]["generation"]["max_new_tokens"] == 10


def test_continual_regime_trains_from_the_previous_generation(tiny_model, tmp_path):
    output = run(tiny_config(tiny_model, cycles=1, regime="continual"), tmp_path / "run")
    stages = json.loads((output / "manifest.json").read_text())["stages"]
    assert stages["cycle_000/train"]["started_from"] == "base"
    assert stages["cycle_001/train"]["started_from"] == "cycle_000"
    assert stages["cycle_001/train"]["inputs"]["upstream"]["weights"] == stages["cycle_000/train"]["outputs"]["adapter"]


def test_full_finetune_saves_full_weights(tiny_model, tmp_path):
    config = tiny_config(tiny_model, cycles=0)
    config["training"] = {**config["training"], "full_finetune": True}
    output = run(config, tmp_path / "run")
    weights = load_file(output / "cycle_000/adapter/model.safetensors")
    assert any("embed_tokens" in name for name in weights)
    assert json.loads((output / "cycle_000/metrics.json").read_text())["coherence"]["n_scored"] > 0


def _start(config_path: Path, output: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "traitloop", "run", str(config_path), "--output", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def kill_while_cycle_one_trains(config_path: Path, output: Path) -> None:
    """Start ``traitloop run`` in a subprocess and SIGKILL it as soon as cycle 1's training set exists."""
    process = _start(config_path, output)
    deadline = time.time() + 300
    while not (output / "cycle_001" / "train.jsonl").exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.time() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (output / "summary.csv").exists()


def assert_killed_and_resumed_matches(config_path: Path, straight: Path, killed: Path) -> None:
    """SIGKILL a run of ``config_path`` while cycle 1 trains, resume it, and check that its summary, cycle 1's
    training set and its adapter are byte for byte those of the uninterrupted run in ``straight``."""
    kill_while_cycle_one_trains(config_path, killed)
    resumed = _start(config_path, killed)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read().decode()
    assert (killed / "summary.csv").read_text() == (straight / "summary.csv").read_text()
    for name in ("cycle_001/train.jsonl", "cycle_001/adapter/adapter_model.safetensors"):
        assert (killed / name).read_bytes() == (straight / name).read_bytes(), name


@pytest.mark.slow
def test_sigkill_mid_cycle_then_resume_matches_an_uninterrupted_run(tiny_model, tmp_path):
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config(tiny_model, cycles=1)))
    killed = tmp_path / "killed"
    kill_while_cycle_one_trains(config_path, killed)
    for output in (killed, tmp_path / "straight"):
        finished = _start(config_path, output)
        assert finished.wait(timeout=600) == 0, finished.stderr.read().decode()
    assert (killed / "summary.csv").read_text() == (tmp_path / "straight" / "summary.csv").read_text()


def test_coherence_filter_and_seed_mixing_shape_the_training_set(tiny_model, tmp_path):
    output = run(tiny_config(tiny_model, cycles=1, min_coherence=0, mix_seed_examples=2), tmp_path / "run")
    rows = read_jsonl(output / "cycle_001/train.jsonl")
    generated = [r for r in rows if r["source"] == "cycle_000"]
    assert generated and all(0 <= r["coherence_score"] <= 100 for r in generated)
    assert sum(r["source"] == "seed" for r in rows) == 2
    data = json.loads((output / "manifest.json").read_text())["stages"]["cycle_001/data"]
    assert data["kept_generated"] == len(generated) and data["examples"] == len(rows)


def test_a_filter_that_drops_everything_stops_with_a_clear_error(tiny_model, tmp_path):
    # The random tiny model writes noise, which the coherence judge scores far below 99.
    with pytest.raises(UserError, match=r"cycle 1: no usable answers to train on .*min_coherence=99"):
        run(tiny_config(tiny_model, cycles=1, min_coherence=99), tmp_path / "run")
    assert (tmp_path / "run" / "cycle_000" / "eval.jsonl").is_file()  # earlier work is kept
