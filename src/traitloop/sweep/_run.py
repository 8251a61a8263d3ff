"""Running a sweep and reading its state: which runs are finished, which failed and why, how far each got.

The sweep folder holds ``sweep.yaml`` (the sweep with its base inlined, so the folder stands alone),
``runs/<run>/`` (ordinary run folders), ``shared/`` (what runs share: the base model's evaluation, made once for
all runs with the same inputs), ``logs/<run>.log`` and ``sweep.json`` (each run's last outcome).
A run counts as finished when its folder holds the same config and its last evaluation is done; finished runs
are skipped, the others are handed to the executor, and ``traitloop.run`` resumes them where they stopped.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from traitloop._atomic import atomic_write_json, atomic_write_text
from traitloop.config import ExperimentConfig, config_to_dict
from traitloop.errors import UserError
from traitloop.rundir import CONFIG_FILE, SHARED, RunFolder, config_stages, is_run_folder, open_run_folder
from traitloop.sweep._executors import RunJob, RunOutcome, run_local, run_ray
from traitloop.sweep._spec import SWEEP_FILE, PlannedRun, Sweep, load_sweep

Executor = Literal["local", "ray"]
STATE_FILE = "sweep.json"


def is_finished(folder: Path, config: ExperimentConfig) -> bool:
    """Finished: made from this very config, every stage current (outputs intact), its summary written."""
    if not is_run_folder(folder):
        return False
    config_path = folder / CONFIG_FILE
    if yaml.safe_load(config_path.read_text()) != config_to_dict(config):
        return False
    return open_run_folder(folder).is_complete()


def _read_state(folder: Path) -> dict[str, Any]:
    path = folder / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {"runs": {}}


class _StateWriter:
    """Records each run's outcome in ``sweep.json`` as it arrives, so a killed sweep still says what happened."""

    def __init__(self, sweep: Sweep) -> None:
        self.sweep = sweep
        self.state = _read_state(sweep.folder)
        self.state["sweep"] = sweep.name
        self.values = {run.name: run.values for run in sweep.runs}

    def record(self, outcome: RunOutcome) -> None:
        self.state["runs"][outcome.name] = {
            "values": self.values[outcome.name],
            "status": outcome.status,
            "error": outcome.error,
            "seconds": outcome.seconds,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        atomic_write_json(self.sweep.folder / STATE_FILE, self.state)


def _job(sweep: Sweep, run: PlannedRun) -> RunJob:
    """A run's job: its folder and log, and the sweep's store of shared stages (runs with the same base model,
    questions, judges and evaluation settings evaluate the base model once between them)."""
    folder = sweep.run_folder(run).resolve()
    log = (sweep.folder / "logs" / f"{run.name}.log").resolve()
    return RunJob(run.name, config_to_dict(run.config), folder, log, shared=(sweep.folder / SHARED).resolve())


def run_sweep(
    path: Path,
    executor: Executor = "local",
    address: str | None = None,
    output: Path | None = None,
    on_outcome: Callable[[RunOutcome], None] | None = None,
) -> list[RunOutcome]:
    """Run every unfinished run of a sweep (a sweep YAML or folder); returns one outcome per run, in grid order."""
    sweep = load_sweep(path, output)
    sweep.folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(sweep.folder / SWEEP_FILE, yaml.safe_dump(sweep.saved(), sort_keys=False))
    writer = _StateWriter(sweep)
    outcomes: dict[str, RunOutcome] = {}

    def collect(outcome: RunOutcome) -> None:
        outcomes[outcome.name] = outcome
        writer.record(outcome)
        if on_outcome:
            on_outcome(outcome)

    jobs = []
    for run in sweep.runs:
        if is_finished(sweep.run_folder(run), run.config):
            collect(RunOutcome(run.name, "skipped"))
        else:
            jobs.append(_job(sweep, run))
    if executor == "ray":
        options = sweep.spec.executor.ray
        if jobs and not (address or options.address):  # Ray on this machine: its tasks share this cache
            warm_caches([run.config for run in sweep.runs if any(job.name == run.name for job in jobs)])
        run_ray(jobs, options.model_copy(update={"address": address}) if address else options, collect)
    elif executor == "local":
        run_local(jobs, collect)
    else:
        raise UserError(f"unknown executor '{executor}': use 'local' or 'ray'")
    return [outcomes[run.name] for run in sweep.runs]


def warm_caches(configs: list[ExperimentConfig]) -> None:
    """Convert each built-in model and fit each embedded trait judge the runs use, once, before they fan out.

    Runs starting cold at once would each do it: safely (caches are published atomically), but once per run, on
    the CPUs the runs wait for. A model or trait that cannot be prepared is left for its runs to report.
    """
    from traitloop.judge import judge_kind
    from traitloop.methods import get_method
    from traitloop.models import resolve_model
    from traitloop.traits import load_trait

    for model in sorted({c.model for c in configs}):
        with contextlib.suppress(UserError):
            resolve_model(model)
    fitted = {(c.trait, c.method, c.judge.trait.kind): c.judge.trait for c in configs}
    for (trait, method, _), spec in sorted(fitted.items()):
        if judge_kind(spec).learns_from_trait:  # a judge fit on the trait's files; a server judge has no fit
            with contextlib.suppress(UserError):
                judge_kind(spec).trait_judge(spec, load_trait(trait), get_method(method).chat)


def is_sweep_folder(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / SWEEP_FILE).is_file()


def report_folders(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """The run folders to report on: a run folder as given, a sweep folder as its evaluated runs; and the fields
    the sweeps among them set, in their files' order."""
    folders: list[Path] = []
    fields: list[str] = []
    for path in map(Path, paths):
        found, grid = sweep_runs(path) if is_sweep_folder(path) else ([path], [])
        folders, fields = [*folders, *found], [*fields, *(name for name in grid if name not in fields)]
    return folders, fields


def sweep_runs(folder: Path) -> tuple[list[Path], list[str]]:
    """A sweep folder's runs that have a current evaluation, in grid order, and the fields its grid (and its
    extra runs) set, in the sweep file's order: the axes a report lays its runs out by."""
    sweep = load_sweep(folder)
    found = [
        sweep.run_folder(run) for run in sweep.runs
        if is_run_folder(sweep.run_folder(run)) and open_run_folder(sweep.run_folder(run)).current_generations()
    ]  # fmt: skip
    if not found:
        raise UserError(f"no run of the sweep in {folder} has an evaluation yet (traitloop sweep status {folder})")
    return found, list(dict.fromkeys([*sweep.spec.grid, *(key for extra in sweep.spec.include for key in extra)]))


def _last_trait(run: RunFolder | None) -> str:
    """The latest generation's trait mean and 95% CI, from current evaluations only."""
    for cycle in reversed(run.current_generations() if run else []):
        trait = run.metrics(cycle)["trait"]
        if cycle is not None and trait["mean"] is not None:
            return f"{trait['mean']:.1f} [{trait['ci_low']:.1f}, {trait['ci_high']:.1f}] @{cycle}"
    return ""


def _verdict(folder: Path) -> str:
    from traitloop.analysis import analyze_run, load_run

    try:
        return analyze_run(load_run(folder)).verdict
    except (UserError, ValueError) as error:
        return f"n/a ({error})"


def _state_of(finished: bool, stages_done: int, recorded: dict[str, Any]) -> str:
    if finished:
        return "finished"
    if recorded.get("status") == "failed":
        return "failed"
    return "partial" if stages_done else "pending"


def sweep_status(path: Path) -> list[dict[str, Any]]:
    """One row per run: state, grid values, stages done, last trait mean with CI, verdict, last error."""
    sweep = load_sweep(path)
    recorded = _read_state(sweep.folder)["runs"]
    rows = []
    for run in sweep.runs:
        folder = sweep.run_folder(run)
        read = open_run_folder(folder) if is_run_folder(folder) else None
        planned = config_stages(run.config)
        done = sum(read.stage_current(stage) for stage in planned) if read else 0
        finished = is_finished(folder, run.config)
        rows.append(
            {
                "run": run.name,
                "values": run.values,
                "state": _state_of(finished, done, recorded.get(run.name, {})),
                "stages": f"{done}/{len(planned)}",
                "trait": _last_trait(read),
                "verdict": _verdict(folder) if finished else "",
                "error": recorded.get(run.name, {}).get("error") or "",
            }
        )
    return rows
