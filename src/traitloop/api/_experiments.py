"""Running experiments and sweeps and reading their state: loading configs, run, evaluate, status, sweep,
calibrate, models."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from traitloop import config as _config
from traitloop.config import ExperimentConfig, default_run_folder
from traitloop.errors import UserError
from traitloop.loop import check_config, evaluate_run, question_sets, quiet_libraries, run_experiment, suite_questions
from traitloop.models import REGISTRY, is_cached, pull
from traitloop.rundir import RunFolder, generation_label, generations, open_run_folder, parse_generations
from traitloop.sweep import Calibration, RunOutcome, run_sweep
from traitloop.sweep import calibrate as run_calibration
from traitloop.sweep import sweep_status as sweep_status
from traitloop.traits import load_conversations, load_prompt_pool, load_trait


def load_config(path: Path | str | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """A config from YAML (or empty) with ``--set`` overrides, checked field by field and by the registries of
    methods, judge kinds and backends: every problem named before any work."""
    path = None if path is None else Path(path)
    return check_config(_config.load_config(path, overrides), str(path) if path else "command line")


def parse_config(data: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """A config from a plain dict, checked as :func:`load_config` checks one."""
    return check_config(_config.parse_config(data, source), source)


def run(
    config: ExperimentConfig | Path | str,
    output: Path | None = None,
    overrides: list[str] | None = None,
    force: bool = False,
    console: Console | None = None,
    gpu_memory: str | int | None = None,
    memory_check: bool = True,
) -> Path:
    """Run or resume an experiment; returns the run folder. ``config`` is a config object or a YAML path. On a
    GPU, or given ``gpu_memory`` (``80GiB``), a config that would not fit is refused unless ``memory_check`` is off."""
    if not isinstance(config, ExperimentConfig):
        config = load_config(Path(config), overrides)
    elif overrides:
        raise UserError("overrides apply to a config file; change the ExperimentConfig object directly instead")
    folder = Path(output) if output else default_run_folder(config.name)
    run_experiment(config, folder, force=force, console=console, gpu_memory=gpu_memory, memory_check=memory_check)
    return folder


def evaluate(
    run_dir: Path,
    questions: Path | None = None,
    name: str | None = None,
    generations: str | list[int | None] = "all",
    contexts: list[str] | None = None,
    force: bool = False,
    console: Console | None = None,
    suite: str | None = None,
) -> Path:
    """Evaluate finished generations of a run without retraining, on the questions in ``questions`` (a prompt
    file: JSONL, JSON list, CSV or Parquet; the eval set is called ``name``) or on one of the trait's suites
    (``suite``, e.g. broad; the set is called after it), in each of ``contexts`` (default: none). Stored in the
    run's ``evals/NAME[@context]/`` and included in its summary, report and verdict. ``generations``: ``all``,
    a list, or text such as ``base,0,3``."""
    if (questions is None) == (suite is None):
        raise UserError("give either --questions FILE with --name NAME, or --suite NAME (a suite of the trait's)")
    name = suite or name
    if name is None or not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise UserError(f"bad --name {name!r}: lowercase letters, digits, _ and - (it names a folder under evals/)")
    config = open_run_folder(run_dir).config
    asked = suite_questions(load_trait(config.trait), suite) if suite else load_prompt_pool(Path(questions))
    sets = question_sets(name, asked, contexts or [], config, suite)
    chosen = parse_generations(generations) if isinstance(generations, str) else generations
    evaluate_run(Path(run_dir), sets, chosen, force=force, console=console)
    return Path(run_dir) / "evals"


def _stage_state(run: RunFolder, stage: str) -> str:
    if run.stage_current(stage):
        return "done"
    return "stale" if stage in run.manifest.stages else "-"


def status(run_dir: Path) -> list[dict[str, Any]]:
    """One row per generation (base first): stage states and, where its evaluation is current, trait and
    coherence. A stage recorded in the manifest but no longer current (its upstream changed) is ``stale``;
    generations evaluated beyond the config's ``cycles`` are listed last as ``ignored``."""
    run = open_run_folder(run_dir)
    rows = []
    for cycle in generations(run.config.cycles):
        label = generation_label(cycle)
        metrics = run.metrics(cycle)
        trait = metrics["trait"] if metrics else None
        rows.append(
            {
                "cycle": label,
                "data": "" if cycle is None else _stage_state(run, f"{label}/data"),
                "train": "" if cycle is None else _stage_state(run, f"{label}/train"),
                "eval": _stage_state(run, f"{label}/eval"),
                "trait": f"{trait['mean']:.1f} [{trait['ci_low']:.1f}, {trait['ci_high']:.1f}]"
                if trait and trait["mean"] is not None
                else "",
                "coherence": f"{metrics['coherence']['mean']:.1f}" if metrics and metrics["coherence"]["mean"] else "",
                "trained": (metrics or {}).get("training", {}).get("examples") or "",
                "device": _made_on(run, label),
            }
        )
    listed = {row["cycle"] for row in rows}
    for label in run.ignored_generations():  # evaluated generations beyond the config's cycles
        if label not in listed:
            rows.append(
                {
                    "cycle": label,
                    "data": "",
                    "train": "",
                    "eval": "ignored",
                    "trait": "",
                    "coherence": "",
                    "trained": "",
                    "device": "",
                }
            )
    return rows


def _made_on(run: RunFolder, label: str) -> str:
    """The device and dtype a generation's stages recorded (``cuda/bfloat16``), joined where they differ."""
    records = [run.manifest.stages.get(f"{label}/{kind}", {}) for kind in ("train", "eval")]
    made = dict.fromkeys(f"{r['device']}/{r['dtype']}" for r in records if "device" in r and "dtype" in r)
    return ", ".join(made)


def sweep(
    sweep_file: Path,
    executor: str = "local",
    address: str | None = None,
    output: Path | None = None,
    on_outcome: Callable[[RunOutcome], None] | None = None,
) -> list[RunOutcome]:
    """Run a sweep (YAML or folder): finished runs skipped, others run or resumed; one outcome per run."""
    quiet_libraries()
    return run_sweep(Path(sweep_file), executor, address, output, on_outcome)


def calibrate(
    config: ExperimentConfig | Path | str,
    target: tuple[float, float],
    output: Path | None = None,
    low: int = 1,
    high: int | None = None,
    max_probes: int = 8,
    overrides: list[str] | None = None,
    console: Console | None = None,
) -> Calibration:
    """Binary-search ``seed_examples`` so generation 0's trait mean lands in ``target``; see ``calibration.json``.

    ``high`` defaults to every seed conversation available; ``output`` to ``sweeps/<config name>``.
    """
    if not isinstance(config, ExperimentConfig):
        path = Path(config)
        config = load_config(path, overrides)
        output = output or Path("sweeps") / (config.name or path.stem)
    output = output or Path("sweeps") / (config.name or "calibration")
    if high is None:
        high = len(load_conversations(config.seed_file or load_trait(config.trait).seed_path))
    quiet_libraries()
    return run_calibration(config, target, Path(output), low, high, max_probes, console)


def list_models() -> list[tuple[str, bool, str]]:
    return [(name, is_cached(name), spec.description) for name, spec in REGISTRY.items()]


def pull_model(name: str) -> Path:
    return pull(name)
