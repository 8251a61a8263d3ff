"""Which device and dtype each stage ran in: recorded in its manifest record, compared when a run resumes.

Device and dtype are facts of a stage, never inputs: a finished run moved to another machine is not redone.
But a chain of generations made partly in float32 and partly in bfloat16 would confound the trend a run
measures with a change of precision, so a run that would mix them stops, unless ``allow_mixed_precision``.
Stages recorded before traitloop recorded precision say nothing, and are not compared. Train stages also
record ``train_dtype``, the dtype training computed in (bfloat16 on a CPU with native bfloat16 under
``dtype: auto``, while the run generates in float32): generations trained in different dtypes are mixed
precisions too.
"""

from __future__ import annotations

from typing import Any

import torch

from traitloop.errors import UserError
from traitloop.loop._run import Run
from traitloop.models import Precision, dtype_name
from traitloop.rundir import cycle_dir_name

PRECISION_FACTS = ("device", "dtype")
TRAIN_DTYPE = "train_dtype"


def runs_a_model(run: Run, stage: str) -> bool:
    """Every stage but a cycle 0 data stage that copies the seed set (DPO's runs the base model for its answers)."""
    return stage != f"{cycle_dir_name(0)}/data" or run.method.seed_data_runs_model


def recorded_precisions(run: Run) -> list[tuple[str, dict[str, Any]]]:
    """(stage, {"device": ..., "dtype": ...}) for each of the config's recorded stages that says where it ran."""
    found = []
    for stage in run.planned_stages():
        record = run.manifest.stages.get(stage, {})
        if all(name in record for name in PRECISION_FACTS):
            found.append((stage, {name: record[name] for name in PRECISION_FACTS}))
    return found


def note_precision(run: Run) -> None:
    """Resolve the run's device and dtype (a UserError for ``device: cuda`` without a GPU), and say so when
    stages already recorded were made on other hardware."""
    now = run.precision.facts
    elsewhere = [(stage, made) for stage, made in recorded_precisions(run) if made != now]
    if not elsewhere:
        return
    stage, made = elsewhere[0]
    more = f" (and {len(elsewhere) - 1} more stages)" if len(elsewhere) > 1 else ""
    run.console.print(
        f"[yellow]note: stage {stage}{more} was made on {_where(made)}, now {_where(now)}; finished stages "
        "are kept as they are[/]"
    )


def stage_precision(run: Run, stage: str) -> dict[str, str]:
    """The device and dtype facts to record for ``stage``, which is about to run ({} for a stage that runs no
    model), with ``train_dtype`` for a train stage. Refuses, before any work, to make it in another dtype than
    the run's other recorded stages, or to train in another dtype than its other train stages."""
    if not runs_a_model(run, stage):
        return {}
    now = run.precision.facts
    trains = {TRAIN_DTYPE: dtype_name(run.training_precision.dtype)} if is_train_stage(stage) else {}
    if not run.config.allow_mixed_precision:
        for other, made in recorded_precisions(run):
            if other != stage and made["dtype"] != now["dtype"]:
                raise UserError(
                    f"stage {stage} would run in {now['dtype']} ({_where(now)}), but stage {other} of this run "
                    f"was made in {made['dtype']} ({_where(made)}): one chain of generations would mix "
                    f"precisions. Set dtype: {made['dtype']} to match it, or allow_mixed_precision: true to "
                    "mix them, or start a new --output"
                )
        for other, trained in recorded_train_dtypes(run) if trains else []:
            if other != stage and trained != trains[TRAIN_DTYPE]:
                raise UserError(
                    f"stage {stage} would train in {trains[TRAIN_DTYPE]}, but stage {other} of this run trained in "
                    f"{trained}: one chain of generations would mix training precisions (dtype: auto trains in "
                    "bfloat16 only on a CPU that computes it natively). Set dtype: float32 to train in float32, "
                    "or allow_mixed_precision: true to mix them, or start a new --output"
                )
    return {**now, **trains}


def is_train_stage(stage: str) -> bool:
    return stage.endswith("/train")


def recorded_train_dtypes(run: Run) -> list[tuple[str, str]]:
    """(stage, train_dtype) for each of the config's recorded train stages that says what it trained in. A
    train stage recorded before ``train_dtype`` was trained in its ``dtype``, as training then always was."""
    records = ((stage, run.manifest.stages.get(stage, {})) for stage in run.planned_stages() if is_train_stage(stage))
    return [(stage, record.get(TRAIN_DTYPE, record.get("dtype"))) for stage, record in records if "dtype" in record]


def describe_precision(precision: Precision, asked: str, training: Precision | None = None) -> str:
    """The line a run starts with: where it computes and in what dtype (and training's, where it differs), and
    why when ``device: auto`` found no GPU (a run that meant to use one must not fall back to the CPU
    unnoticed)."""
    device = precision.device
    if device.type == "cuda":
        where = f"cuda ({torch.cuda.get_device_name(device)})"
    else:
        where = "cpu" + (" (device auto: torch sees no usable CUDA GPU)" if asked == "auto" else "")
    line = f"device: {where}, dtype: {dtype_name(precision.dtype)}"
    if training is not None and training.dtype != precision.dtype:
        line += f" (training: {dtype_name(training.dtype)}, native on this CPU)"
    return line


def check_gpus(run: Run) -> None:
    """Refuse, before any work, training on more GPU processes than this machine has GPUs (``processes`` is one
    process per GPU; on a CPU they are CPU processes, as the launched-training tests use)."""
    processes = max(run.config.training_for(cycle).processes for cycle in (0, 1))
    if run.precision.device.type == "cuda" and processes > torch.cuda.device_count():
        raise UserError(
            f"training.processes is {processes}, one per GPU, but this machine has {torch.cuda.device_count()} "
            "GPU(s): lower training.processes, or run where there are enough GPUs"
        )


def _where(facts: dict[str, Any]) -> str:
    return f"{facts['device']}/{facts['dtype']}"
