"""The three kinds of stage a cycle runs - data, train, eval - each skipped when the manifest says it finished
with the same inputs and its outputs still hash the same, each seeded from the config's seed and its own name.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from traitloop._atomic import atomic_write_json, write_jsonl
from traitloop.config import TrainingConfig
from traitloop.generate import SamplingParams
from traitloop.loop._evals import EvalSet
from traitloop.loop._evaluate import evaluate_generation, metrics_from_records
from traitloop.loop._inputs import config_inputs
from traitloop.loop._plan import largest_micro_batch
from traitloop.loop._precision import TRAIN_DTYPE, stage_precision
from traitloop.loop._run import Run
from traitloop.methods import TrainJob, TrainResult, batch_split, train_job, train_launched, uses_checkpointing
from traitloop.models import is_adapter
from traitloop.rundir import (
    BASE,
    EVAL_FILE,
    METRICS_FILE,
    TRAIN_DATA,
    TRAINING_FACTS,
    SharedStages,
    content_hash,
    cycle_dir_name,
    stage_folder,
)

METRICS_SCHEMA_VERSION = 2  # 2: training.tokens, training.steps and the method's own facts


def run_stage(
    run: Run, stage: str, upstream: dict[str, str], outputs: list[str], work, shared: SharedStages | None = None
) -> dict[str, Any]:
    """Run ``work()`` unless the stage is already done with these inputs; return the stage's record. With
    ``shared``, a stage another run made with the same inputs is taken from there, or made and put there."""
    folder = run.folder / stage_folder(stage)
    inputs = {"config": config_inputs(run, stage), "upstream": upstream}
    if run.manifest.is_done(stage, inputs, folder):
        return run.manifest.stages[stage]
    if shared is None:
        return _make(run, stage, inputs, outputs, work, folder)
    with shared.claim(stage, inputs) as entry:
        record = entry.record()
        if record is None:
            entry.publish(folder, _make(run, stage, inputs, outputs, work, folder))
        else:
            entry.take(folder, record)
            run.manifest.stages[stage] = record  # as the run that made it recorded it
            run.manifest.save()
    return run.manifest.stages[stage]


def _make(run: Run, stage: str, inputs: dict[str, Any], outputs: list[str], work, folder: Path) -> dict[str, Any]:
    started = time.perf_counter()
    facts = {**stage_precision(run, stage), **(work() or {})}  # device, dtype: facts, not inputs
    hashes = {name: content_hash(folder / name) for name in outputs}
    run.manifest.record(stage, inputs, hashes, seconds=round(time.perf_counter() - started, 2), **facts)
    return run.manifest.stages[stage]


def train_stage(run: Run, cycle: int) -> dict[str, Any]:
    """Train generation ``cycle`` with the cycle's method, from the base or (continuing) from generation k-1."""
    if is_control_seed(run, cycle):
        return {"examples": 0, "steps": 0, "tokens": 0, "started_from": BASE}
    start_from = None if run.config.starts_from_base(cycle) else run.weights(cycle - 1)
    method = run.method_for(cycle)
    label = cycle_dir_name(cycle)
    job = TrainJob(
        method=method.name,
        base=run.base,
        data=run.folder / label / TRAIN_DATA,
        output_dir=run.weights_dir(cycle),
        training=_sized_training(run, cycle),
        seed=run.stage_seed(f"{label}/train"),
        start_from=start_from,
        trust_remote_code=run.config.trust_remote_code,
        chat_template_kwargs=run.config.generation.chat_template_kwargs,
        report_to=run.config.report_to,
        log_dir=run.folder / "tensorboard" / label,
        **run.training_precision.facts,  # the device and dtype the trainer runs in
        **method.job_settings(run, cycle),
    )
    with run.device_for_training(), run.progress.task(f"cycle {cycle}: training", None) as step:
        result = _train_generation(run, job, step.set_total_and_position)
    micro, accumulation = batch_split(job.training, job.training.processes)
    return {
        "micro_batch_size": micro,  # how the batch was split: facts, not inputs (the objective is the same)
        "gradient_accumulation_steps": accumulation,
        "gradient_checkpointing": uses_checkpointing(job.training, run.precision.device),
        "examples": result.examples,
        "steps": result.steps,
        "tokens": result.tokens,
        "train_seconds": round(result.seconds, 2),
        "examples_per_second": round(result.examples_per_second, 3),
        "loss_first": round(result.losses[0], 4) if result.losses else None,
        "loss_last": round(result.losses[-1], 4) if result.losses else None,
        "started_from": cycle_dir_name(cycle - 1) if start_from else BASE,
        **({TRAIN_DTYPE: result.dtype} if result.dtype else {}),  # as the trainer computed it
        **result.facts,
    }


def _sized_training(run: Run, cycle: int) -> TrainingConfig:
    """Cycle ``cycle``'s training settings, with the micro-batch the memory plan says fits this GPU where the
    config leaves it open (on a CPU the whole batch goes at once, as it always has)."""
    training = run.config.training_for(cycle)
    if training.micro_batch_size is not None or run.precision.device.type != "cuda":
        return training
    return training.model_copy(update={"micro_batch_size": largest_micro_batch(run.config, cycle)})


def is_control_seed(run: Run, cycle: int) -> bool:
    """A control chain (``seed_examples: 0``) trains nothing in cycle 0: its generation 0 is the base model."""
    return cycle == 0 and run.config.seed_examples == 0


def _train_generation(run: Run, job: TrainJob, on_step) -> TrainResult:
    """In this process, or through ``accelerate launch`` on ``training.processes`` processes (GPUs)."""
    processes = job.training.processes
    if processes == 1:
        return train_job(job, on_step)
    return train_launched(job, processes, on_step, log=job.data.with_name("train.launch.log"))


def build_data_stage(run: Run, cycle: int) -> dict[str, Any]:
    """Write cycle ``cycle``'s train.jsonl with the cycle's method; return the facts the data stage records."""
    rows, facts = ([], {}) if is_control_seed(run, cycle) else run.method_for(cycle).build_data(run, cycle)
    write_jsonl(run.folder / cycle_dir_name(cycle) / TRAIN_DATA, rows)
    return {"examples": len(rows), **facts}


def evaluate_stage(run: Run, cycle: int | None, eval_set: EvalSet) -> dict[str, Any]:
    """Evaluate the base model (``cycle=None``) or generation ``cycle`` on ``eval_set``; write its eval.jsonl and
    metrics.json in the stage's folder."""
    stage = eval_set.stage(cycle)
    weights = None if cycle is None else run.weights(cycle)
    model, tokenizer = run.model(weights), run.tokenizer()
    base_model = model if weights is None or is_adapter(weights) else run.model()
    config = run.config.evaluation
    params = SamplingParams(
        temperature=config.temperature,
        top_p=config.top_p,
        max_new_tokens=config.max_new_tokens,
        batch_size=config.batch_size,
        seed=run.stage_seed(stage),
    )
    name = ("base model" if cycle is None else f"generation {cycle}") + (
        f" on {eval_set.name}" if eval_set.name else ""
    )
    records, persona = evaluate_generation(
        run.generator(model, cycle),
        model,
        base_model,
        tokenizer,
        eval_set,
        config.eval_samples,
        params,
        run.trait_judge,
        run.coherence_judge,
        cycle,
        run.progress,
        chat=run.chat,
        persona=run.trait if config.projection and run.chat else None,
        name=f"evaluating {name}",
    )
    folder = run.folder / stage_folder(stage)
    write_jsonl(folder / EVAL_FILE, [r.model_dump() for r in records])
    metrics = {
        "schema_version": METRICS_SCHEMA_VERSION,
        "cycle": cycle,
        "trait": run.trait.name,
        "trait_version": run.trait.version,
        "suite": eval_set.suite,
        "context": eval_set.context,
        **({"eval_set": eval_set.name} if eval_set.name else {}),
        **metrics_from_records(records, config.bootstrap_resamples, run.config.seed),
        **({"persona": persona} if persona else {}),
    }
    if cycle is not None:
        train = run.manifest.stages[f"{cycle_dir_name(cycle)}/train"]
        metrics["training"] = {k: train[k] for k in (*TRAINING_FACTS, *run.method.facts) if k in train}
    atomic_write_json(folder / METRICS_FILE, metrics)
    return {}


def evaluate_generation_stages(run: Run, cycle: int | None, eval_sets: list[EvalSet]) -> list[dict[str, Any]]:
    """Run generation ``cycle``'s evaluation stages on ``eval_sets``; their metrics, in order."""
    upstream = (
        {"judges": run.judge_ids} if cycle is None else {"weights": run.weights_hash(cycle), "judges": run.judge_ids}
    )
    shared = run.shared if cycle is None else None  # the base model's answers are the same in every run
    found = []
    for eval_set in eval_sets:
        stage = eval_set.stage(cycle)
        make = lambda s=eval_set: evaluate_stage(run, cycle, s)  # noqa: E731
        run_stage(run, stage, upstream, [EVAL_FILE, METRICS_FILE], make, shared)
        found.append(json.loads((run.folder / stage_folder(stage) / METRICS_FILE).read_text()))
    return found
