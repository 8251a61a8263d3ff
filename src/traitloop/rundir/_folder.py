"""A run folder read back: its config, its manifest, and which of its stages are current.

The API, sweeps, calibration and analysis read runs through :func:`open_run_folder`, never by globbing
folders; a stage counts as finished only while its inputs and outputs still match its record and the
outputs it was made from (its upstream) are the ones the manifest holds now.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitloop.config import ExperimentConfig, load_config
from traitloop.errors import UserError
from traitloop.rundir._layout import (
    BASE,
    CONFIG_FILE,
    EVAL_FILE,
    MANIFEST_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    UPSTREAM_SOURCES,
    WEIGHTS,
    cycle_dir_name,
    eval_set_of,
    eval_set_stage,
    generation_label,
    generations,
    planned_stages,
    stage_cycle,
    stage_folder,
    stage_kind,
    weights_id,
)
from traitloop.rundir._manifest import Manifest, outputs_intact


@dataclass
class RunFolder:
    """A run folder read back: its config, its manifest, and which of its stages are current.

    A stage is current when the manifest records it as done, its outputs still have their recorded hashes,
    it belongs to the config's cycles, and every output it was made from is the one its upstream stage
    holds now. Results (status, sweeps, analysis) come only from current stages, so outputs a killed
    ``--force`` left behind, or cycles beyond a lowered ``cycles``, are never mixed into them.
    """

    folder: Path
    config: ExperimentConfig
    manifest: Manifest

    _current: dict[str, bool] = field(default_factory=dict, init=False, repr=False)

    def stage_current(self, stage: str) -> bool:
        if stage not in self._current:
            self._current[stage] = self._check_stage(stage)
        return self._current[stage]

    def _check_stage(self, stage: str) -> bool:
        record = self.manifest.stages.get(stage)
        cycle = stage_cycle(stage)
        if not record or record.get("status") != "done" or (cycle is not None and cycle > self.config.cycles):
            return False
        if not outputs_intact(self.folder / stage_folder(stage), record):
            return False
        upstream = record.get("inputs", {}).get("upstream", {})
        for key, (offset, kind, output) in UPSTREAM_SOURCES.get(stage_kind(stage), {}).items():
            if key not in upstream:
                continue
            source = f"{cycle_dir_name((cycle or 0) + offset)}/{kind}"
            if not self.stage_current(source) or _output_id(self.manifest.stages[source], output) != upstream[key]:
                return False
        return True

    def _eval_stage(self, cycle: int | None, eval_set: str | None) -> str:
        return f"{generation_label(cycle)}/eval" if eval_set is None else eval_set_stage(eval_set, cycle)

    def generation_current(self, cycle: int | None, eval_set: str | None = None) -> bool:
        """Whether generation ``cycle`` (None: the base model) has a current evaluation (on ``eval_set``; None:
        the main one)."""
        return self.stage_current(self._eval_stage(cycle, eval_set))

    def current_generations(self, eval_set: str | None = None) -> list[int | None]:
        """The generations with a current evaluation (on ``eval_set``), base model first."""
        return [c for c in generations(self.config.cycles) if self.generation_current(c, eval_set)]

    def planned_stages(self) -> list[str]:
        """Every stage the run's config asks for, in the order the loop runs them (its eval sets included)."""
        return config_stages(self.config)

    def eval_sets(self) -> list[str]:
        """The eval sets of this run: the config's, then any others evaluated later (``traitloop eval``)."""
        configured = [name for name, _, _ in self.config.evaluation.eval_sets()]
        recorded = sorted({name for name in map(eval_set_of, self.manifest.stages) if name is not None})
        return configured + [name for name in recorded if name not in configured]

    def eval_path(self, cycle: int | None, eval_set: str | None = None) -> Path:
        return self.folder / stage_folder(self._eval_stage(cycle, eval_set)) / EVAL_FILE

    def metrics(self, cycle: int | None, eval_set: str | None = None) -> dict[str, Any] | None:
        """A generation's ``metrics.json`` (on ``eval_set``), or None when that evaluation is not current."""
        if not self.generation_current(cycle, eval_set):
            return None
        path = self.folder / stage_folder(self._eval_stage(cycle, eval_set)) / METRICS_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def training(self, cycle: int | None) -> dict[str, Any]:
        """What generation ``cycle`` was trained on: the ``training`` block of its metrics.json (empty for the
        base model, and where the run recorded none)."""
        return {} if cycle is None else (self.metrics(cycle) or {}).get("training", {})

    def ignored_generations(self) -> list[str]:
        """Generation folders holding an evaluation that is not current (superseded or beyond ``cycles``)."""
        labels = [BASE, *sorted(p.name for p in self.folder.glob("cycle_*") if p.is_dir())]
        current = {generation_label(c) for c in self.current_generations()}
        return [label for label in labels if (self.folder / label / EVAL_FILE).is_file() and label not in current]

    def is_complete(self) -> bool:
        """Every stage of the config is current and the summary table is written."""
        stages_current = all(self.stage_current(s) for s in self.planned_stages())
        return stages_current and (self.folder / SUMMARY_FILE).is_file()


def _output_id(record: dict[str, Any], output: str) -> str | None:
    return weights_id(record) if output == WEIGHTS else record["outputs"].get(output)


def config_stages(config: ExperimentConfig) -> list[str]:
    """Every stage a run of ``config`` has, in the order the loop runs them, the config's eval sets included."""
    return planned_stages(config.cycles, [name for name, _, _ in config.evaluation.eval_sets()])


def is_run_folder(folder: Path) -> bool:
    return (folder / MANIFEST_FILE).is_file() and (folder / CONFIG_FILE).is_file()


def open_run_folder(folder: Path | str) -> RunFolder:
    """Read a run folder written by ``traitloop run``; a clear error if it is not one."""
    folder = Path(folder)
    if not is_run_folder(folder):
        raise UserError(f"{folder} is not a traitloop run folder (needs {CONFIG_FILE} and {MANIFEST_FILE})")
    return RunFolder(folder, load_config(folder / CONFIG_FILE), Manifest(folder / MANIFEST_FILE))
