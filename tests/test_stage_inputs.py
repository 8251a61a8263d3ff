"""Runs made before the methods package still resume: every stage's recorded config inputs are unchanged.

``data/stage_inputs_v1.json`` holds, for configs of every method and setting that existed then, the inputs
each stage recorded, captured with the code before the restructuring into ``traitloop.methods``. A stage
whose inputs changed would be refused as "config changed" (or redone under --force) in every existing run.
"""

import json
from pathlib import Path

import pytest
from rich.console import Console

from traitloop.config import parse_config
from traitloop.loop._engine import _open_run
from traitloop.loop._inputs import config_inputs as _config_inputs
from traitloop.rundir import planned_stages

RECORDED = json.loads((Path(__file__).parent / "data" / "stage_inputs_v1.json").read_text())


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_stages_record_the_inputs_runs_made_before_the_methods_package_recorded(name, embedded_model, tmp_path):
    config = parse_config(RECORDED[name]["config"])
    run = _open_run(config, tmp_path / name, Console(quiet=True))
    recorded = RECORDED[name]["stages"]
    assert sorted(recorded) == sorted(planned_stages(config.cycles))
    for stage, inputs in recorded.items():
        now = _config_inputs(run, stage)
        if "trait" in inputs:  # the trait's files may have changed since (a new version): its ref is compared apart
            assert now.pop("trait").split("/")[0].split("@")[0] == inputs.pop("trait").split("/")[0].split("@")[0]
        assert now == inputs, stage
