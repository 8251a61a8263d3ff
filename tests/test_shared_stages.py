"""What runs share: a sweep's base-model evaluation is made once, by one run, and taken by the others, also
when they start at once; a run made alone evaluates the base model itself, as before."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest
import yaml
from conftest import tiny_config

from traitloop.analysis import load_run
from traitloop.rundir import SHARED, SharedStages, content_hash, value_hash
from traitloop.sweep import run_sweep

INPUTS = {"config": {"model": "tiny", "seed": 0}, "upstream": {"judges": ["embedded"]}}


def _make_or_take(store: Path, run: Path, made: Path, die_while_making: bool = False) -> None:
    """One run's base evaluation through the store: made (slowly, so the others arrive meanwhile) or taken."""
    with SharedStages(store).claim("base/eval", INPUTS) as entry:
        record = entry.record()
        if record is not None:
            entry.take(run / "base", record)
            return
        with made.open("a") as log:
            log.write(f"{os.getpid()}\n")
        time.sleep(0.3)
        if die_while_making:
            os._exit(1)  # killed half-way: nothing published, the lock dropped with the process
        answers = run / "base" / "eval.jsonl"
        answers.parent.mkdir(parents=True, exist_ok=True)
        answers.write_text('{"answer": "the same for every run"}\n')
        outputs = {"eval.jsonl": content_hash(answers)}
        entry.publish(run / "base", {"inputs": INPUTS, "inputs_hash": value_hash(INPUTS), "outputs": outputs})


def test_runs_starting_at_once_make_a_shared_stage_once(tmp_path: Path) -> None:
    store, made = tmp_path / SHARED, tmp_path / "made.log"
    context = multiprocessing.get_context("fork")
    killed = context.Process(target=_make_or_take, args=(store, tmp_path / "killed", made, True))
    killed.start()
    time.sleep(0.1)  # it holds the lock when the others start
    runs = [tmp_path / f"run{i}" for i in range(4)]
    workers = [context.Process(target=_make_or_take, args=(store, run, made)) for run in runs]
    for worker in workers:
        worker.start()
    for process in (killed, *workers):
        process.join(timeout=30)
    assert killed.exitcode == 1 and [w.exitcode for w in workers] == [0, 0, 0, 0]
    assert len(made.read_text().splitlines()) == 2  # the killed run, then one other; the rest took it
    entries = [p for p in store.iterdir() if p.is_dir()]
    assert len(entries) == 1 and not [p for p in store.iterdir() if p.name.startswith(".")]  # nothing half-made
    answers = [(run / "base" / "eval.jsonl") for run in runs]
    assert {a.read_text() for a in answers} == {'{"answer": "the same for every run"}\n'}
    assert (entries[0] / "eval.jsonl").stat().st_nlink == 1 + len(runs)  # one copy on disk, linked into each run


def _sweep(folder: Path, base: dict, grid: dict) -> Path:
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump({"base": base, "grid": grid}, sort_keys=False))
    outcomes = run_sweep(path, output=folder / "sweep")
    assert [o.status for o in outcomes] == ["done"] * len(outcomes), [o.error for o in outcomes]
    return folder / "sweep"


def _base_records(sweep: Path) -> list[dict]:
    runs = sorted((sweep / "runs").iterdir())
    return [json.loads((run / "manifest.json").read_text())["stages"]["base/eval"] for run in runs]


def test_a_sweep_evaluates_the_base_model_once(tiny_model: Path, tmp_path: Path) -> None:
    """Two control runs (nothing to train) whose settings do not touch the base evaluation."""
    base = tiny_config(tiny_model, cycles=0, seed_examples=0)
    sweep = _sweep(tmp_path, base, {"samples_per_cycle": [4, 6]})
    assert len([p for p in (sweep / SHARED).iterdir() if p.is_dir()]) == 1
    first, second = _base_records(sweep)
    assert first == second  # made once (the same time and seconds), taken by the other
    runs = sorted((sweep / "runs").iterdir())
    assert len({(run / "base" / "eval.jsonl").stat().st_ino for run in runs}) == 1  # linked, not copied


@pytest.mark.slow
def test_a_2x2_sweep_of_tiny_runs_shares_one_base_evaluation_and_reports_by_its_fields(tiny_model, tmp_path):
    import traitloop
    from traitloop.api import parse_config, report

    base = tiny_config(tiny_model, cycles=1)
    sweep = _sweep(tmp_path, base, {"seed_examples": [4, 8], "samples_per_cycle": [4, 6]})
    assert len([p for p in (sweep / SHARED).iterdir() if p.is_dir()]) == 1  # one base evaluation, not four
    records = _base_records(sweep)
    assert all(record == records[0] for record in records)
    written = report([sweep])
    assert written.comparison.grid_axes == ["seed_examples", "samples_per_cycle"]
    assert [cell.label for cell in written.comparison.grid] == [
        f"seed_examples={e}, samples_per_cycle={s}" for e in (4, 8) for s in (4, 6)
    ]
    assert written.table == sweep / "summary.parquet" and (sweep / "report_plots" / "grid.png").is_file()

    alone = traitloop.run(parse_config({**base, "seed_examples": 4, "samples_per_cycle": 4}), output=tmp_path / "a")
    own = json.loads((alone / "manifest.json").read_text())["stages"]["base/eval"]
    assert own["inputs_hash"] == records[0]["inputs_hash"] and own["outputs"] == records[0]["outputs"]
    assert load_run(alone).summary("trait", None) == load_run(sweep / "runs" / written.comparison.runs[0].run).summary(
        "trait", None
    )  # a run made alone gives the numbers the sweep's runs share
