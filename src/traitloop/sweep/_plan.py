"""Planning before any work (``traitloop plan``): a config's stages, data and memory, or each run's of a sweep."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from traitloop.config import ExperimentConfig, load_config
from traitloop.errors import UserError
from traitloop.io import read_yaml
from traitloop.loop import Plan, check_config, plan_run
from traitloop.sweep._spec import load_sweep


def is_sweep(path: Path) -> bool:
    """A sweep folder, or a YAML file with a sweep's ``base`` (and grid), or a config with a ``sweep:`` block."""
    if path.is_dir():
        return True
    data = read_yaml(path)
    return isinstance(data, dict) and ("base" in data or "sweep" in data)


def plan_runs(
    config: ExperimentConfig | Path | str, gpu_memory: str | int | None = None, overrides: list[str] | None = None
) -> list[Plan]:
    """Plan a run of ``config`` (an object, or a YAML file with ``overrides``), or each run of a sweep file or
    folder, before any work: every stage's data and estimated peak memory, and whether it fits ``gpu_memory``
    (``80GiB``; default: the free memory of the GPU present)."""
    if isinstance(config, ExperimentConfig) or not is_sweep(Path(config)):
        if isinstance(config, ExperimentConfig):
            if overrides:
                raise UserError("overrides apply to a config file; change the ExperimentConfig object instead")
            return [plan_run(config, gpu_memory)]
        path = Path(config)
        loaded = check_config(load_config(path, overrides), str(path))
        return [dataclasses.replace(plan_run(loaded, gpu_memory), name=loaded.name or path.stem)]
    if overrides:
        raise UserError("--set applies to an experiment config; a sweep's grid and base set its runs' fields")
    runs = load_sweep(Path(config)).runs
    return [dataclasses.replace(plan_run(run.config, gpu_memory), name=run.name) for run in runs]
