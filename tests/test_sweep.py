"""Sweeps: grid expansion and validation, the local executor with skip-on-rerun, status, and calibration."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from conftest import tiny_config
from rich.console import Console
from test_cli import invoke

from traitloop.api import calibrate
from traitloop.errors import UserError
from traitloop.sweep import load_sweep, run_sweep, search_seed_examples, sweep_status


def write_sweep(folder: Path, spec: dict, base: dict | None = None) -> Path:
    if base is not None:
        (folder / "base.yaml").write_text(yaml.safe_dump(base))
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_grid_expands_to_named_validated_runs(tmp_path):
    path = write_sweep(
        tmp_path,
        {
            "base": "base.yaml",
            "grid": {"seed_examples": [16, 32], "seed": [0, 1], "training.learning_rate": [0.002]},
            "include": [{"regime": "continual"}],
        },
        base={"trait": "lucky", "cycles": 2},
    )
    sweep = load_sweep(path)
    assert sweep.folder == Path("sweeps/grid")
    assert [run.name for run in sweep.runs] == [
        "seed_examples=16,seed=0,training.learning_rate=0.002",
        "seed_examples=16,seed=1,training.learning_rate=0.002",
        "seed_examples=32,seed=0,training.learning_rate=0.002",
        "seed_examples=32,seed=1,training.learning_rate=0.002",
        "regime=continual",
    ]
    last_grid_run, extra = sweep.runs[3].config, sweep.runs[4].config
    assert (last_grid_run.seed_examples, last_grid_run.seed, last_grid_run.training.learning_rate) == (32, 1, 0.002)
    assert last_grid_run.name == sweep.runs[3].name and last_grid_run.cycles == 2
    assert (extra.regime, extra.seed_examples, extra.seed) == ("continual", 64, 0)


def test_sweep_block_inside_an_experiment_config(tmp_path):
    path = tmp_path / "experiment.yaml"
    path.write_text("trait: lucky\ncycles: 1\nsweep:\n  name: lucky-seeds\n  grid:\n    trait: [lucky, hopelessness]\n")
    sweep = load_sweep(path)
    assert sweep.folder.name == "lucky-seeds"
    assert [(run.name, run.config.trait, run.config.cycles) for run in sweep.runs] == [
        ("trait=lucky", "lucky", 1),
        ("trait=hopelessness", "hopelessness", 1),
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"grid": {"seed_exampels": [8]}}, "unknown field 'seed_exampels' - did you mean 'seed_examples'?"),
        ({"grid": {"training.lerning_rate": [0.1]}}, "did you mean 'training.learning_rate'?"),
        ({"grid": {"seed_examples": [-1]}}, "run 'seed_examples=-1'"),
        ({"grid": {"seed": []}}, "grid field 'seed' has no values"),
        ({"grid": {"seed": [1, 1]}}, "two runs are both named 'seed=1'"),
        ({"gird": {"seed": [1]}}, "unknown field 'gird' - did you mean 'grid'?"),
        ({"executor": {"ray": {"num_gpu_per_run": 1}}}, "did you mean 'num_gpus_per_run'?"),
    ],
)
def test_sweep_mistakes_name_the_field(tmp_path, spec, message):
    path = write_sweep(tmp_path, {"base": {"trait": "lucky"}, **spec})
    with pytest.raises(UserError) as error:
        load_sweep(path)
    assert message in str(error.value)


def test_search_finds_a_size_in_the_band_within_its_bounds():
    probed: list[int] = []

    def measure(size: int) -> float:  # a monotone response: 10 + 0.5 points per seed conversation
        probed.append(size)
        return 10 + 0.5 * size

    assert search_seed_examples(measure, 1, 160, (40, 60), max_probes=8) == (80, True)
    assert probed == [80]
    probed.clear()
    assert search_seed_examples(measure, 1, 40, (40, 60), max_probes=8) == (40, False)
    assert probed == [20, 30, 35, 38, 39, 40] and all(1 <= size <= 40 for size in probed)
    probed.clear()
    size, in_band = search_seed_examples(measure, 1, 160, (70.2, 70.4), max_probes=3)
    assert probed == [80, 120, 140] and (size, in_band) == (120, False)


def test_search_rejects_empty_bounds():
    with pytest.raises(UserError, match="low <= high"):
        search_seed_examples(float, 10, 5, (40, 60), max_probes=8)


def test_local_sweep_runs_reports_failures_and_skips_finished_runs(tiny_model, tmp_path):
    spec = {
        "name": "tiny",
        "base": tiny_config(tiny_model, cycles=0),
        "grid": {"seed_examples": [4]},
        "include": [{"seed_examples": 500}],  # passes validation, fails when the run opens its seed file
    }
    path, output = write_sweep(tmp_path, spec), tmp_path / "sweeps" / "tiny"
    first = run_sweep(path, output=output)
    assert [(o.name, o.status) for o in first] == [("seed_examples=4", "done"), ("seed_examples=500", "failed")]
    assert "seed_examples is 500" in first[1].error
    assert (output / "runs" / "seed_examples=4" / "summary.csv").is_file()
    assert "Traceback" in (output / "logs" / "seed_examples=500.log").read_text()

    again = run_sweep(output)  # the folder alone is enough to re-run it
    assert [o.status for o in again] == ["skipped", "failed"]
    state = json.loads((output / "sweep.json").read_text())["runs"]
    assert state["seed_examples=4"]["status"] == "skipped" and state["seed_examples=500"]["status"] == "failed"

    finished = output / "runs" / "seed_examples=4"
    trained = json.loads((finished / "manifest.json").read_text())["stages"]["cycle_000/train"]["finished"]
    (finished / "cycle_000" / "metrics.json").unlink()  # a damaged run is resumed, not skipped nor redone
    assert sweep_status(output)[0]["state"] == "partial"
    assert [o.status for o in run_sweep(output)] == ["done", "failed"]
    assert json.loads((finished / "manifest.json").read_text())["stages"]["cycle_000/train"]["finished"] == trained

    result = invoke("sweep", "status", str(output))
    assert result.exit_code == 0
    rows = {row["run"]: row for row in sweep_status(output)}
    assert rows["seed_examples=4"]["state"] == "finished" and rows["seed_examples=4"]["stages"] == "4/4"
    assert rows["seed_examples=4"]["verdict"] == "too few cycles"
    assert rows["seed_examples=500"]["state"] == "failed" and rows["seed_examples=500"]["stages"] == "0/4"
    assert "finished" in result.text and "failed" in result.text


def test_sweep_cli_runs_a_sweep_file_and_exits_1_when_a_run_failed(tmp_path):
    path = write_sweep(tmp_path, {"base": {"trait": "lucky", "seed_examples": 500}, "grid": {"seed": [0]}})
    result = invoke("sweep", str(path), "--output", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "failed seed=0: seed_examples is 500" in result.text and "0 of 1 runs finished" in result.text


def test_sweep_cli_reports_a_bad_sweep_file(tmp_path):
    path = write_sweep(tmp_path, {"base": {"trait": "lucky"}, "grid": {"cylces": [1]}})
    result = invoke("sweep", "run", str(path))
    assert result.exit_code == 2 and "did you mean 'cycles'?" in result.text
    assert invoke("sweep", "status", str(tmp_path)).exit_code == 2


def test_calibrate_probes_within_bounds_and_reuses_finished_probes(tiny_model, tmp_path):
    config_path, output = tmp_path / "experiment.yaml", tmp_path / "sweep"
    config_path.write_text(yaml.safe_dump(tiny_config(tiny_model)))
    first = calibrate(config_path, (40, 60), output, low=3, high=4, max_probes=4, console=Console(file=io.StringIO()))
    # The tiny random model scores far below 40 at any seed size, so the search climbs to its upper bound.
    assert all(probe.trait_mean < 40 for probe in first.probes)
    assert [(p.seed_examples, p.reused) for p in first.probes] == [(3, False), (4, False)]
    assert first.seed_examples in (3, 4) and not first.in_band
    probes = output / "calibration"
    manifests = [json.loads((probes / f"seed_examples={n}" / "manifest.json").read_text()) for n in (3, 4)]
    assert manifests[0]["stages"]["base/eval"] == manifests[1]["stages"]["base/eval"]  # evaluated once, shared
    assert all(
        m["stages"]["cycle_000/eval"]["status"] == "done" and "cycle_001/data" not in m["stages"] for m in manifests
    )
    written = json.loads((output / "calibration.json").read_text())
    assert written["target"] == [40, 60] and written["seed_examples"] == first.seed_examples
    for probe, manifest_dir in zip(written["probes"], ("seed_examples=3", "seed_examples=4"), strict=True):
        metrics = json.loads((probes / manifest_dir / "cycle_000" / "metrics.json").read_text())
        assert probe["trait_mean"] == metrics["trait"]["mean"]

    result = invoke(
        "calibrate", str(config_path), "--target", "40-60", "--low", "3", "--high", "4", "--output", str(output)
    )
    assert result.exit_code == 0 and result.text.count("yes") == 2  # both probes reused, none retrained
    assert f"seed_examples: {first.seed_examples} (closest to the band" in result.text
