"""Trackers: training curves and per-generation metrics in TensorBoard, without changing what a run computes."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from conftest import tiny_config
from jobs import train
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_train import CONFIG, seeds

import traitloop
from traitloop.api import parse_config
from traitloop.errors import UserError


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_training_curves_reach_tensorboard(tiny_model, tmp_path):
    result = train(
        tiny_model,
        tmp_path / "adapter",
        seeds(),
        "sft",
        CONFIG,
        seed=3,
        report_to=["tensorboard"],
        log_dir=tmp_path / "tb",
    )
    logged = scalars(tmp_path / "tb")
    assert [step for step, _ in logged["train/loss"]] == [1, 2]
    assert [value for _, value in logged["train/loss"]] == pytest.approx(result.losses, rel=1e-5)


def test_each_generation_is_logged_and_no_stage_reruns(finished_run, tiny_model, tmp_path):
    run = shutil.copytree(finished_run, tmp_path / "run")
    before = json.loads((run / "manifest.json").read_text())["stages"]
    traitloop.run(parse_config(tiny_config(tiny_model, report_to=["tensorboard"])), output=run)
    after = json.loads((run / "manifest.json").read_text())["stages"]
    assert {k: v["finished"] for k, v in after.items()} == {k: v["finished"] for k, v in before.items()}
    logged = scalars(run / "tensorboard" / "cycles")
    base = json.loads((run / "base" / "metrics.json").read_text())
    assert logged["base/trait/mean"] == [(-1, pytest.approx(base["trait"]["mean"]))]
    for cycle in (0, 1, 2):
        metrics = json.loads((run / f"cycle_{cycle:03d}" / "metrics.json").read_text())
        for key in ("mean", "ci_low", "ci_high"):
            assert (cycle, pytest.approx(metrics["trait"][key])) in logged[f"generation/trait/{key}"]
        assert (cycle, pytest.approx(metrics["perplexity"])) in logged["generation/perplexity"]


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_a_tracker_without_its_package_stops_before_any_work(tiny_model, tmp_path):
    with pytest.raises(UserError, match="report_to: wandb needs its package: pip install 'wandb'"):
        traitloop.run(parse_config(tiny_config(tiny_model, report_to=["wandb"])), output=tmp_path / "run")
    assert not (tmp_path / "run" / "base").exists()
