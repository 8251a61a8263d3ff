"""The run directory as the one authority: only current stages count as results, superseded outputs are kept
aside, newer record versions are refused, and one process at a time works on a run folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import tiny_config
from synthetic_runs import record_stages, write_run

import traitloop
from traitloop.analysis import load_run
from traitloop.api import parse_config
from traitloop.errors import UserError
from traitloop.rundir import Manifest, RunLock, open_run_folder


def run(config: dict, output: Path, force: bool = False) -> Path:
    return traitloop.run(parse_config(config), output=output, force=force)


def copy_of(finished_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def test_an_interrupted_forced_redo_reports_only_current_generations(finished_run, tiny_model, tmp_path):
    """--force moves the superseded cycles aside; when the redo stops in cycle 1, nothing of the old cycles 1
    and 2 is read as a result by analysis or status, and the old outputs are kept byte for byte."""
    output = copy_of(finished_run, tmp_path)
    old_eval = (output / "cycle_001" / "eval.jsonl").read_bytes()
    # min_coherence 99 changes cycle 1's data stage, and drops every answer of the random tiny model there
    with pytest.raises(UserError, match="no usable answers"):
        run(tiny_config(tiny_model, min_coherence=99), output, force=True)
    assert load_run(output).cycles == [0]
    rows = {row["cycle"]: row for row in traitloop.status(output)}
    assert rows["cycle_000"]["eval"] == "done" and rows["cycle_000"]["trait"]
    assert rows["cycle_001"]["eval"] == "-" and rows["cycle_001"]["trait"] == ""
    assert rows["cycle_002"]["eval"] == "-" and not (output / "cycle_002").exists()
    [moved] = (output / "superseded").iterdir()
    assert (moved / "cycle_001" / "eval.jsonl").read_bytes() == old_eval
    assert (moved / "cycle_002" / "adapter").is_dir()
    record = json.loads((moved / "superseded.json").read_text())
    assert "min_coherence" in record["reason"] and "cycle_002/eval" in record["stages"]


def test_a_forced_change_to_training_moves_aside_only_that_stage_and_later(finished_run, tiny_model, tmp_path):
    output = copy_of(finished_run, tmp_path)
    data = (output / "cycle_002" / "train.jsonl").read_bytes()
    config = tiny_config(tiny_model)
    config["training"] = {**config["training"], "learning_rate": 5e-4}
    run(config, output, force=True)
    [moved] = (output / "superseded").iterdir()
    assert (moved / "cycle_000" / "adapter").is_dir() and (moved / "cycle_000" / "eval.jsonl").is_file()
    assert not (moved / "cycle_000" / "train.jsonl").exists()  # cycle 0's data did not change: left in place
    assert load_run(output).cycles == [0, 1, 2]
    assert (output / "cycle_002" / "train.jsonl").read_bytes() != data  # made from the retrained generation 1


def test_lowering_cycles_ignores_later_generations_and_raising_them_reuses_them(finished_run, tiny_model, tmp_path):
    output = copy_of(finished_run, tmp_path)
    run(tiny_config(tiny_model, cycles=1), output)
    assert load_run(output).cycles == [0, 1]
    assert len(pd.read_csv(output / "summary.csv")) == 3
    rows = traitloop.status(output)
    assert [r["cycle"] for r in rows] == ["base", "cycle_000", "cycle_001", "cycle_002"]
    assert rows[-1]["eval"] == "ignored"
    before = json.loads((output / "manifest.json").read_text())["stages"]["cycle_002/eval"]["finished"]
    run(tiny_config(tiny_model), output)
    assert json.loads((output / "manifest.json").read_text())["stages"]["cycle_002/eval"]["finished"] == before
    assert load_run(output).cycles == [0, 1, 2]


def test_a_generation_whose_upstream_changed_is_not_current(tmp_path):
    """Edited weights make that generation's training and everything made from it stale."""
    folder = write_run(tmp_path / "run", [20, 50, 40, 30])
    assert load_run(folder).cycles == [0, 1, 2]
    (folder / "cycle_001" / "adapter" / "adapter_config.json").write_text('{"edited": true}')
    assert load_run(folder).cycles == [0]
    read = open_run_folder(folder)
    assert read.stage_current("cycle_001/data") and not read.stage_current("cycle_001/train")
    assert not read.stage_current("cycle_001/eval") and not read.stage_current("cycle_002/data")


def test_a_manifest_from_a_newer_traitloop_is_refused(tmp_path):
    folder = write_run(tmp_path / "run", [20, 50, 40])
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "manifest_version": 99}))
    for read in (load_run, traitloop.status, open_run_folder):
        with pytest.raises(UserError, match=r"version 99.*reads up to version 1.*newer traitloop"):
            read(folder)


def test_an_eval_record_from_a_newer_traitloop_is_refused(tmp_path):
    folder = write_run(tmp_path / "run", [20, 50, 40])
    path = folder / "cycle_000" / "eval.jsonl"
    path.write_text("".join(json.dumps({**json.loads(line), "schema_version": 7}) + "\n" for line in path.open()))
    # the edit also breaks the recorded hash, so re-record the stage as the loop would have written it
    manifest = Manifest(folder / "manifest.json")
    record_stages(manifest, folder, "cycle_000")
    with pytest.raises(UserError, match=r"eval.jsonl has version 7.*newer traitloop"):
        load_run(folder)


HOLD_LOCK = """
import sys, time
from pathlib import Path
from traitloop.rundir import RunLock
from traitloop.rundir import Manifest
with RunLock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_process_is_refused_at_once_naming_the_holder(tiny_model, tmp_path):
    output = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(output)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.perf_counter()
        with pytest.raises(UserError, match=rf"in use by process {holder.pid} on .*One process works on a run"):
            run(tiny_config(tiny_model), output)
        assert time.perf_counter() - started < 10
        assert not (output / "manifest.json").exists()  # refused before writing anything
    finally:
        holder.kill()
        holder.wait()


CLI_REFUSED = """
import sys
from typer.testing import CliRunner
from traitloop.cli import app
result = CliRunner().invoke(app, ["run", sys.argv[1], "--output", sys.argv[2]])
print(result.exit_code, "torch" in sys.modules, result.output.replace("\\n", " "))
"""


def test_the_command_line_refuses_a_held_run_folder_before_loading_torch(tiny_model, tmp_path):
    """The refusal comes before the seconds-long imports of torch and transformers, so it is at once."""
    output, config = tmp_path / "run", tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tiny_model)))
    with RunLock(output):
        refused = subprocess.run(
            [sys.executable, "-c", CLI_REFUSED, str(config), str(output)], capture_output=True, text=True, timeout=120
        )
    code, torch_loaded, message = refused.stdout.strip().split(" ", 2)
    assert (code, torch_loaded) == ("2", "False"), refused.stdout + refused.stderr
    assert f"in use by process {os.getpid()}" in " ".join(message.split())


@pytest.mark.slow
def test_a_lock_left_by_a_killed_process_is_taken_over(tiny_model, tmp_path, capsys):
    output = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(output)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    assert json.loads((output / ".traitloop.lock").read_text())["pid"] == holder.pid  # left behind
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config(tiny_model, cycles=0)))
    result = subprocess.run(
        [sys.executable, "-m", "traitloop", "run", str(config_path), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert f"its last process ({holder.pid}) stopped" in result.stdout.replace("\n", " ")
    assert (output / "summary.csv").is_file()
    with RunLock(output) as lock:  # released at the end of the run, with nothing left to take over
        assert lock.taken_over is None
