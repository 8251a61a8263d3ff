"""The cycle engine: seed cycle, self-training cycles and evaluation, written to a resumable run directory.

Each cycle has three stages - ``data`` (what the generation trains on), ``train`` (its weights) and
``eval`` (its answers, scores and metrics). A stage is skipped only when the manifest says it finished with
the same inputs and its outputs still hash the same; every stage is seeded from the config's seed and its
own name, so a stage redone after a kill produces exactly what it would have the first time.

The three methods (sft, dpo, sdf) share every stage; what differs is dispatched to small per-method
functions: the training set (``loop/_data.py``), the trainer (``train.train_from_file``, in this process or
launched on several) and, for sdf, evaluation on document prefixes instead of chat questions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from traitloop._atomic import atomic_write_json, atomic_write_text, write_jsonl
from traitloop.config import ExperimentConfig, config_to_dict
from traitloop.errors import UserError
from traitloop.generate import SamplingParams
from traitloop.loop._data import build_training_set, data_upstream
from traitloop.loop._evaluate import evaluate_generation, metrics_from_records
from traitloop.loop._lock import RunLock
from traitloop.loop._precision import note_precision, stage_precision
from traitloop.loop._progress import StageProgress, quiet_libraries
from traitloop.loop._run import Run, stage_seed
from traitloop.loop._rundir import (
    BASE,
    CONFIG_FILE,
    EVAL_FILE,
    MANIFEST_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    TRAIN_DATA,
    WEIGHTS,
    Manifest,
    content_hash,
    cycle_dir_name,
    environment,
    generation_label,
    planned_stages,
    save_config,
    stage_cycle,
    supersede,
    value_hash,
)
from traitloop.loop._trackers import CycleLogger
from traitloop.models import is_adapter, resolve_model
from traitloop.train import TrainResult, train_from_file, train_launched
from traitloop.traits import (
    load_conversations,
    load_documents,
    load_prompt_pool,
    load_sdf_recipe,
    load_trait,
    prompt_slices,
)

METRICS_SCHEMA_VERSION = 1
DPO_FACTS = ("reward_margin", "reward_chosen", "reward_rejected", "reward_accuracy", "kl_proxy", "reference")


def _config_inputs(run: Run, stage: str) -> dict[str, Any]:
    """The config values a stage depends on, by field name, so a change can be reported by name."""
    c = config_to_dict(run.config)
    cycle = stage_cycle(stage)
    kind = stage.split("/")[1]
    if kind == "eval":
        fields = {"trait": run.trait_ref, "evaluation": c["evaluation"], "seed": c["seed"]}
        backend = _backend_inputs(c["generation"])
        if backend:
            fields["generation"] = backend
        if run.recipe is not None:  # sdf evaluates document prefixes, not the chat questions sft and dpo share
            fields.update(method=c["method"], sdf_recipe=value_hash(run.recipe.model_dump()))
        return {"model": c["model"], **fields} if cycle is None else fields
    if kind == "train":
        return _train_inputs(run, cycle, c)
    return _data_inputs(run, cycle, c)


def _backend_inputs(generation: dict[str, Any]) -> dict[str, Any]:
    """Who samples, when it is not the local default (named only then, so earlier runs stay valid): the
    backend, and for a server the model it serves and where."""
    if generation["backend"] == "local":
        return {}
    server = generation["server"]
    where = {"server": {"model": server["model"], "base_url": server["base_url"]}} if server else {}
    return {"backend": generation["backend"], **where}


def _sampling_inputs(generation: dict[str, Any]) -> dict[str, Any]:
    settings = {k: v for k, v in generation.items() if k not in ("backend", "server", "vllm")}
    return {**settings, **_backend_inputs(generation)}


def _train_inputs(run: Run, cycle: int, c: dict[str, Any]) -> dict[str, Any]:
    # processes is named only when above 1, so runs made before it existed stay valid
    training = {k: v for k, v in c["training"].items() if k != "processes" or v != 1}
    fields = {"model": c["model"], "method": c["method"], "training": training, "seed": c["seed"]}
    if cycle:
        fields["regime"] = c["regime"]
    if run.config.method == "dpo":
        dpo = {"beta": c["dpo"]["beta"], "loss_type": c["dpo"]["loss_type"]}
        if cycle:  # only whether *this* cycle restarts matters, so editing the list redoes just those cycles
            dpo["restart_from_base_at"] = cycle in run.config.dpo.restart_from_base_at
        fields["dpo"] = dpo
    return fields


def _data_inputs(run: Run, cycle: int, c: dict[str, Any]) -> dict[str, Any]:
    # "method" is named only for dpo and sdf, so runs made before those methods existed stay valid
    method = {} if c["method"] == "sft" else {"method": c["method"]}
    if cycle == 0:
        fields = {**method, "seed_file": run.seed_hash, "seed_examples": c["seed_examples"]}
        if c["method"] == "dpo":  # the base model answers the seed prompts
            fields.update(model=c["model"], generation=_sampling_inputs(c["generation"]), seed=c["seed"])
        return fields
    fields = {
        **method,
        "prompt_pool": value_hash(run.slices[cycle - 1]),
        "samples_per_cycle": c["samples_per_cycle"],
        "seed": c["seed"],
        "generation": _sampling_inputs(c["generation"]),
        "mix_seed_examples": c["mix_seed_examples"],
        "min_coherence": c["min_coherence"],
    }
    if c["method"] == "dpo":
        fields["dpo"] = {"rejected_from": c["dpo"]["rejected_from"]}
    return {**fields, "seed_file": run.seed_hash} if c["mix_seed_examples"] else fields


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _changed_fields(recorded: dict[str, Any], planned: dict[str, Any]) -> list[str]:
    """Dotted names of the config fields whose values differ (``training.learning_rate``)."""
    old, new = _flatten(recorded), _flatten(planned)
    return [name for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]


def _check_config_unchanged(run: Run, force: bool) -> None:
    """Refuse to mix results of two configs in one run folder; with ``force``, redo from the first change."""
    first_changed: tuple[int, str, list[str]] | None = None
    for index, stage in enumerate(planned_stages(run.config.cycles)):
        record = run.manifest.stages.get(stage)
        if record is None:
            continue
        changed = _changed_fields(record["inputs"]["config"], _config_inputs(run, stage))
        if changed:
            first_changed = (index, stage, changed)
            break
    if first_changed is None:
        return
    index, stage, changed = first_changed
    cycle = stage_cycle(stage)
    where = "the base model's evaluation" if cycle is None else f"cycle {cycle}"
    if not force:
        raise UserError(
            f"the config changed since this run was made: {', '.join(repr(f) for f in changed)} "
            f"affects {where} onward (stage {stage}). Use --force to redo from there, or a new --output."
        )
    run.console.print(f"[yellow]--force: {', '.join(changed)} changed; redoing from {stage}[/]")
    superseded = planned_stages(max(run.config.cycles, _recorded_cycles(run.manifest)))[index:]
    moved = supersede(run.folder, superseded, run.manifest, f"--force: {', '.join(changed)} changed")
    if moved is not None:
        run.console.print(f"[yellow]the superseded outputs are kept in {moved}[/]")
    for later in superseded:
        run.manifest.forget(later)


def _recorded_cycles(manifest: Manifest) -> int:
    return max((c for c in map(stage_cycle, manifest.stages) if c is not None), default=0)


def _run_stage(run: Run, stage: str, upstream: dict[str, str], outputs: list[str], work) -> dict[str, Any]:
    """Run ``work()`` unless the stage is already done with these inputs; return the stage's record."""
    folder = run.folder / stage.split("/")[0]
    inputs = {"config": _config_inputs(run, stage), "upstream": upstream}
    if run.manifest.is_done(stage, inputs, folder):
        return run.manifest.stages[stage]
    started = time.perf_counter()
    facts = {**stage_precision(run, stage), **(work() or {})}  # device, dtype: facts, not inputs
    hashes = {name: content_hash(folder / name) for name in outputs}
    run.manifest.record(stage, inputs, hashes, seconds=round(time.perf_counter() - started, 2), **facts)
    return run.manifest.stages[stage]


def _train(run: Run, cycle: int) -> dict[str, Any]:
    """Train generation ``cycle`` with the run's method, from the base or (continuing) from generation k-1."""
    folder = run.folder / cycle_dir_name(cycle)
    start_from = None if run.config.starts_from_base(cycle) else run.weights(cycle - 1)
    with run.progress.task(f"cycle {cycle}: training", None) as step:
        kwargs = {
            "output_dir": run.weights(cycle),
            "config": run.config.training,
            "seed": stage_seed(run.config.seed, f"{cycle_dir_name(cycle)}/train"),
            "start_from": start_from,
            "on_step": step.set_total_and_position,
            "trust_remote_code": run.config.trust_remote_code,
            "report_to": run.config.report_to,
            "log_dir": run.folder / "tensorboard" / cycle_dir_name(cycle),
            **run.precision.facts,  # the device and dtype the trainer runs in
        }
        result = _train_generation(run, folder / TRAIN_DATA, kwargs)
    return {
        "examples": result.examples,
        "steps": result.steps,
        "train_seconds": round(result.seconds, 2),
        "examples_per_second": round(result.examples_per_second, 3),
        "loss_first": round(result.losses[0], 4) if result.losses else None,
        "loss_last": round(result.losses[-1], 4) if result.losses else None,
        "started_from": cycle_dir_name(cycle - 1) if start_from else BASE,
        **result.facts,
    }


def _train_generation(run: Run, data: Path, kwargs: dict[str, Any]) -> TrainResult:
    """In this process, or through ``accelerate launch`` on ``training.processes`` processes (GPUs)."""
    method, dpo = run.config.method, run.config.dpo if run.config.method == "dpo" else None
    processes = run.config.training.processes
    if processes == 1:
        return train_from_file(method, run.base, data, dpo=dpo, **kwargs)
    return train_launched(method, run.base, data, processes, kwargs, dpo=dpo, log=data.with_name("train.launch.log"))


def _evaluate(run: Run, cycle: int | None) -> dict[str, Any]:
    """Evaluate the base model (``cycle=None``) or generation ``cycle``; write eval.jsonl and metrics.json."""
    label = generation_label(cycle)
    weights = None if cycle is None else run.weights(cycle)
    model, tokenizer = run.model(weights), run.tokenizer()
    base_model = model if weights is None or is_adapter(weights) else run.model()
    config = run.config.evaluation
    params = SamplingParams(
        temperature=config.temperature,
        top_p=config.top_p,
        max_new_tokens=config.max_new_tokens,
        batch_size=config.batch_size,
        seed=stage_seed(run.config.seed, f"{label}/eval"),
    )
    questions = run.trait.eval_questions if run.recipe is None else run.recipe.eval_prefixes
    name = "base model" if cycle is None else f"generation {cycle}"
    with run.progress.task(f"evaluating {name}", len(questions) * config.eval_samples) as step:
        records = evaluate_generation(
            run.generator(model, cycle),
            base_model,
            tokenizer,
            questions,
            config.eval_samples,
            params,
            run.trait_judge,
            run.coherence_judge,
            cycle,
            step,
            chat=run.chat,
        )
    folder = run.folder / label
    write_jsonl(folder / EVAL_FILE, [r.model_dump() for r in records])
    metrics = {
        "schema_version": METRICS_SCHEMA_VERSION,
        "cycle": cycle,
        "trait": run.trait.name,
        "trait_version": run.trait.version,
        **metrics_from_records(records, config.bootstrap_resamples, run.config.seed),
    }
    if cycle is not None:
        train = run.manifest.stages[f"{label}/train"]
        metrics["training"] = {
            k: train[k]
            for k in ("examples", "steps", "loss_first", "loss_last", "started_from", *DPO_FACTS)
            if k in train
        }
    atomic_write_json(folder / METRICS_FILE, metrics)
    return {}


def _summary_row(metrics: dict[str, Any]) -> dict[str, Any]:
    trait, coherence = metrics["trait"], metrics["coherence"]
    return {
        "cycle": BASE if metrics["cycle"] is None else metrics["cycle"],
        "trait_mean": trait["mean"],
        "trait_ci_low": trait["ci_low"],
        "trait_ci_high": trait["ci_high"],
        "coherence_mean": coherence["mean"],
        "coherence_ci_low": coherence["ci_low"],
        "coherence_ci_high": coherence["ci_high"],
        "n_answers": metrics["n_answers"],
        "length_words": metrics["length_words"],
        "distinct_2": metrics["distinct_2"],
        "perplexity": metrics["perplexity"],
        "examples_trained": metrics.get("training", {}).get("examples"),
        "train_loss_last": metrics.get("training", {}).get("loss_last"),
        **{name: metrics.get("training", {}).get(name) for name in DPO_FACTS if name in metrics.get("training", {})},
    }


def _write_summary(run: Run) -> pd.DataFrame:
    labels = [BASE] + [cycle_dir_name(c) for c in range(run.config.cycles + 1)]
    rows = [_summary_row(json.loads((run.folder / label / METRICS_FILE).read_text())) for label in labels]
    table = pd.DataFrame(rows)
    atomic_write_text(run.folder / SUMMARY_FILE, table.to_csv(index=False))
    return table


def _cycle_line(metrics: dict[str, Any], seconds: float) -> str:
    trait, coherence = metrics["trait"], metrics["coherence"]
    label = "base model" if metrics["cycle"] is None else f"generation {metrics['cycle']}"
    trained = metrics.get("training", {}).get("examples")
    return (
        f"[bold]{label}[/]: trait {_fmt(trait['mean'])} [{_fmt(trait['ci_low'])}, {_fmt(trait['ci_high'])}]"
        f"  coherence {_fmt(coherence['mean'])}"
        + (f"  trained on {trained} examples" if trained else "")
        + f"  ({seconds / 60:.1f} min)"
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _open_run(config: ExperimentConfig, output: Path, console: Console) -> Run:
    """Resolve the trait, model, seed set and prompt slices, checking every input before any work starts."""
    trait = load_trait(config.trait)
    recipe = load_sdf_recipe(trait) if config.method == "sdf" else None
    if recipe is None:
        seed_path = config.seed_file or trait.seed_path
        seeds, what = load_conversations(seed_path), "conversations"
        pool, held_out = load_prompt_pool(config.prompt_pool), trait.eval_questions
    else:
        seed_path = config.seed_file or trait.folder / "sdf_seed.jsonl"
        seeds, what = load_documents(seed_path), "documents"
        pool, held_out = recipe.prefix_pool(), recipe.eval_prefixes
    if config.seed_examples > len(seeds):
        raise UserError(f"seed_examples is {config.seed_examples} but {seed_path} has only {len(seeds)} {what}")
    slices = prompt_slices(pool, held_out, config.seed, config.cycles, config.samples_per_cycle)
    base = resolve_model(config.model)
    return Run(
        config=config,
        folder=output,
        manifest=Manifest(output / MANIFEST_FILE),
        trait=trait,
        base=base,
        seeds=seeds,
        seed_hash=content_hash(seed_path),
        slices=slices,
        recipe=recipe,
        console=console,
        progress=StageProgress(console),
    )


def _write_run_header(run: Run) -> None:
    save_config(run.folder / CONFIG_FILE, config_to_dict(run.config))
    run.manifest.data.update(
        {
            "name": run.config.name or run.folder.name,
            "seed": run.config.seed,
            "trait": {"name": run.trait.name, "version": run.trait.version, "hash": run.trait.content_hash()},
            "model": {"name": run.config.model, "resolved": run.base},
            "environment": environment(),
        }
    )
    run.manifest.save()


def run_experiment(
    config: ExperimentConfig, output: Path, force: bool = False, console: Console | None = None
) -> pd.DataFrame:
    """Run (or resume) an experiment into ``output`` and return its per-cycle summary table."""
    console = console or Console()
    quiet_libraries()
    run = _open_run(config, output, console)
    output.mkdir(parents=True, exist_ok=True)
    with RunLock(output) as lock:
        if lock.taken_over:
            console.print(f"[yellow]taking over {output}: its last process ({lock.taken_over.get('pid')}) stopped[/]")
        run.manifest = Manifest(output / MANIFEST_FILE)  # read again now that no other process can write it
        return _run_locked(run, force)


def _run_locked(run: Run, force: bool) -> pd.DataFrame:
    """The run itself, while this process holds the run folder's lock."""
    config, output, console = run.config, run.folder, run.console
    _check_config_unchanged(run, force)
    note_precision(run)
    _write_run_header(run)
    tracker = CycleLogger(config.report_to, output, run.manifest.data["name"], config_to_dict(config))
    started = time.perf_counter()
    _run_stage(run, f"{BASE}/eval", {"judges": run.judge_ids}, [EVAL_FILE, METRICS_FILE], lambda: _evaluate(run, None))
    base_metrics = json.loads((output / BASE / METRICS_FILE).read_text())
    console.print(_cycle_line(base_metrics, time.perf_counter() - started))
    tracker.log(base_metrics)
    for cycle in range(config.cycles + 1):
        started = time.perf_counter()
        label = cycle_dir_name(cycle)
        make_data = lambda c=cycle: build_training_set(run, c)  # noqa: E731
        data = _run_stage(run, f"{label}/data", data_upstream(run, cycle), [TRAIN_DATA], make_data)
        upstream = {"data": data["outputs"][TRAIN_DATA]}
        if not config.starts_from_base(cycle):
            upstream["weights"] = run.weights_hash(cycle - 1)
        train = _run_stage(run, f"{label}/train", upstream, [WEIGHTS], lambda c=cycle: _train(run, c))
        _run_stage(
            run,
            f"{label}/eval",
            {"weights": train["outputs"][WEIGHTS], "judges": run.judge_ids},
            [EVAL_FILE, METRICS_FILE],
            lambda c=cycle: _evaluate(run, c),
        )
        metrics = json.loads((output / label / METRICS_FILE).read_text())
        console.print(_cycle_line(metrics, time.perf_counter() - started))
        tracker.log(metrics)
    tracker.close()
    return _write_summary(run)
