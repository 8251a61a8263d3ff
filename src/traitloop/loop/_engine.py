"""The cycle engine: seed cycle, self-training cycles and evaluation, written to a resumable run directory.

Each cycle has three stages - ``data`` (what the generation trains on), ``train`` (its weights) and
``eval`` (its answers, scores and metrics). A stage is skipped only when the manifest says it finished with
the same inputs and its outputs still hash the same; every stage is seeded from the config's seed and its
own name, so a stage redone after a kill produces exactly what it would have the first time.

Every method shares every stage; what differs is asked of the run's method (``traitloop.methods``): the data
a cycle trains on, how a generation is trained (in this process, or launched on several), how an evaluation
asks and which judge fits. The engine holds no per-method branches.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from traitloop._atomic import atomic_write_json, atomic_write_text, write_jsonl
from traitloop.config import MAIN_SUITE, NO_CONTEXT, ExperimentConfig, config_to_dict
from traitloop.errors import UserError
from traitloop.generate import SamplingParams
from traitloop.loop._evals import EvalSet, config_eval_sets
from traitloop.loop._evaluate import evaluate_generation, metrics_from_records
from traitloop.loop._lock import RunLock
from traitloop.loop._precision import note_precision, stage_precision
from traitloop.loop._progress import StageProgress, quiet_libraries
from traitloop.loop._run import Run
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
    RunFolder,
    content_hash,
    cycle_dir_name,
    environment,
    eval_set_of,
    generation_label,
    open_run_folder,
    planned_stages,
    save_config,
    stage_cycle,
    stage_folder,
    stage_kind,
    supersede,
)
from traitloop.loop._trackers import CycleLogger
from traitloop.methods import TrainJob, TrainResult, backend_inputs, get_method, train_job, train_launched
from traitloop.models import is_adapter, resolve_model
from traitloop.traits import load_trait, prompt_slices

METRICS_SCHEMA_VERSION = 2  # 2: training.tokens, training.steps and the method's own facts
TRAINING_FACTS = ("examples", "steps", "tokens", "loss_first", "loss_last", "started_from")


def _config_inputs(run: Run, stage: str) -> dict[str, Any]:
    """The config values a stage depends on, by field name, so a change can be reported by name."""
    c = config_to_dict(run.config)
    cycle = stage_cycle(stage)
    kind = stage_kind(stage)
    if kind == "eval":
        # which suites and contexts the run also asks are the eval sets' own inputs, not the main evaluation's
        evaluation = {k: v for k, v in c["evaluation"].items() if k not in ("suites", "contexts", "context_file")}
        if evaluation["projection"]:  # named only when off, so runs made before it existed stay current
            del evaluation["projection"]
        fields = {"trait": run.trait_ref, "evaluation": evaluation, "seed": c["seed"]}
        backend = backend_inputs(run)
        if backend:
            fields["generation"] = backend
        fields.update(run.seed_set.eval_inputs)  # sdf evaluates document prefixes, not the chat questions
        fields.update(run.eval_set(stage).inputs())
        return {"model": c["model"], **fields} if cycle is None else fields
    if kind == "train":
        return _train_inputs(run, cycle)
    return run.method_for(cycle).data_inputs(run, cycle)


def _train_inputs(run: Run, cycle: int) -> dict[str, Any]:
    c = run.config
    # processes is named only when above 1, so runs made before it existed stay valid
    training = {k: v for k, v in c.training_for(cycle).model_dump(mode="json").items() if k != "processes" or v != 1}
    fields = {"model": c.model, "method": c.method, "training": training, "seed": c.seed}
    if cycle:
        fields["regime"] = c.regime
    return {**fields, **run.method_for(cycle).train_inputs(run, cycle)}


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
    for index, stage in enumerate(planned_stages(run.config.cycles, list(run.eval_sets))):
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
    superseded = planned_stages(max(run.config.cycles, _recorded_cycles(run.manifest)), list(run.eval_sets))[index:]
    redone = {stage_cycle(s) for s in superseded if stage_kind(s) == "train"} | ({None} if index == 0 else set())
    superseded += [s for s in run.manifest.stages if eval_set_of(s) not in (None, *run.eval_sets)  # traitloop eval's
                   and stage_cycle(s) in redone]  # fmt: skip
    moved = supersede(run.folder, superseded, run.manifest, f"--force: {', '.join(changed)} changed")
    if moved is not None:
        run.console.print(f"[yellow]the superseded outputs are kept in {moved}[/]")
    for later in superseded:
        run.manifest.forget(later)


def _recorded_cycles(manifest: Manifest) -> int:
    return max((c for c in map(stage_cycle, manifest.stages) if c is not None), default=0)


def _run_stage(run: Run, stage: str, upstream: dict[str, str], outputs: list[str], work) -> dict[str, Any]:
    """Run ``work()`` unless the stage is already done with these inputs; return the stage's record."""
    folder = run.folder / stage_folder(stage)
    inputs = {"config": _config_inputs(run, stage), "upstream": upstream}
    if run.manifest.is_done(stage, inputs, folder):
        return run.manifest.stages[stage]
    started = time.perf_counter()
    facts = {**stage_precision(run, stage), **(work() or {})}  # device, dtype: facts, not inputs
    hashes = {name: content_hash(folder / name) for name in outputs}
    run.manifest.record(stage, inputs, hashes, seconds=round(time.perf_counter() - started, 2), **facts)
    return run.manifest.stages[stage]


def _train(run: Run, cycle: int) -> dict[str, Any]:
    """Train generation ``cycle`` with the cycle's method, from the base or (continuing) from generation k-1."""
    if _is_control_seed(run, cycle):
        return {"examples": 0, "steps": 0, "tokens": 0, "started_from": BASE}
    start_from = None if run.config.starts_from_base(cycle) else run.weights(cycle - 1)
    method = run.method_for(cycle)
    label = cycle_dir_name(cycle)
    job = TrainJob(
        method=method.name,
        base=run.base,
        data=run.folder / label / TRAIN_DATA,
        output_dir=run.weights_dir(cycle),
        training=run.config.training_for(cycle),
        seed=run.stage_seed(f"{label}/train"),
        start_from=start_from,
        trust_remote_code=run.config.trust_remote_code,
        report_to=run.config.report_to,
        log_dir=run.folder / "tensorboard" / label,
        **run.precision.facts,  # the device and dtype the trainer runs in
        **method.job_settings(run, cycle),
    )
    with run.progress.task(f"cycle {cycle}: training", None) as step:
        result = _train_generation(run, job, step.set_total_and_position)
    return {
        "examples": result.examples,
        "steps": result.steps,
        "tokens": result.tokens,
        "train_seconds": round(result.seconds, 2),
        "examples_per_second": round(result.examples_per_second, 3),
        "loss_first": round(result.losses[0], 4) if result.losses else None,
        "loss_last": round(result.losses[-1], 4) if result.losses else None,
        "started_from": cycle_dir_name(cycle - 1) if start_from else BASE,
        **result.facts,
    }


def _is_control_seed(run: Run, cycle: int) -> bool:
    """A control chain (``seed_examples: 0``) trains nothing in cycle 0: its generation 0 is the base model."""
    return cycle == 0 and run.config.seed_examples == 0


def _train_generation(run: Run, job: TrainJob, on_step) -> TrainResult:
    """In this process, or through ``accelerate launch`` on ``training.processes`` processes (GPUs)."""
    processes = job.training.processes
    if processes == 1:
        return train_job(job, on_step)
    return train_launched(job, processes, on_step, log=job.data.with_name("train.launch.log"))


def _build_data(run: Run, cycle: int) -> dict[str, Any]:
    """Write cycle ``cycle``'s train.jsonl with the cycle's method; return the facts the data stage records."""
    rows, facts = ([], {}) if _is_control_seed(run, cycle) else run.method_for(cycle).build_data(run, cycle)
    write_jsonl(run.folder / cycle_dir_name(cycle) / TRAIN_DATA, rows)
    return {"examples": len(rows), **facts}


def _evaluate(run: Run, cycle: int | None, eval_set: EvalSet) -> dict[str, Any]:
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
    with run.progress.task(f"evaluating {name}", len(eval_set.questions) * config.eval_samples) as step:
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
            step,
            chat=run.chat,
            persona=run.trait if config.projection and run.chat else None,
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


def _evaluate_generation(run: Run, cycle: int | None, eval_sets: list[EvalSet]) -> list[dict[str, Any]]:
    """Run generation ``cycle``'s evaluation stages on ``eval_sets``; their metrics, in order."""
    upstream = (
        {"judges": run.judge_ids} if cycle is None else {"weights": run.weights_hash(cycle), "judges": run.judge_ids}
    )
    found = []
    for eval_set in eval_sets:
        stage = eval_set.stage(cycle)
        _run_stage(run, stage, upstream, [EVAL_FILE, METRICS_FILE], lambda s=eval_set: _evaluate(run, cycle, s))
        found.append(json.loads((run.folder / stage_folder(stage) / METRICS_FILE).read_text()))
    return found


def _summary_row(metrics: dict[str, Any], method_facts: tuple[str, ...]) -> dict[str, Any]:
    trait, coherence = metrics["trait"], metrics["coherence"]
    training = metrics.get("training", {})
    return {
        "cycle": BASE if metrics["cycle"] is None else metrics["cycle"],
        "suite": metrics.get("suite", MAIN_SUITE),
        "context": metrics.get("context", NO_CONTEXT),
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
        "examples_trained": training.get("examples"),
        "tokens_trained": training.get("tokens"),
        "optimizer_steps": training.get("steps"),
        "train_loss_last": training.get("loss_last"),
        **{name: training.get(name) for name in method_facts if name in training},
    }


def _write_summary(run: Run) -> pd.DataFrame:
    """summary.csv: one row per generation and eval set (the main evaluation first), current results only."""
    folder = RunFolder(run.folder, run.config, run.manifest)
    rows = [
        _summary_row(metrics, run.method.facts)
        for eval_set in [None, *folder.eval_sets()]
        for cycle in [None, *range(run.config.cycles + 1)]
        if (metrics := folder.metrics(cycle, eval_set)) is not None
    ]
    table = pd.DataFrame(rows)
    atomic_write_text(run.folder / SUMMARY_FILE, table.to_csv(index=False))
    return table


def _cycle_line(metrics: dict[str, Any], seconds: float) -> str:
    trait, coherence = metrics["trait"], metrics["coherence"]
    label = "base model" if metrics["cycle"] is None else f"generation {metrics['cycle']}"
    if "eval_set" in metrics:
        label = f"  {metrics['eval_set']}"
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
    method = get_method(config.method)
    seed_set = method.seed_set(trait, config)
    if config.seed_examples > len(seed_set.examples):
        raise UserError(
            f"seed_examples is {config.seed_examples} but {seed_set.path} has only {len(seed_set.examples)} "
            f"{seed_set.what}"
        )
    slices = prompt_slices(
        seed_set.pool, seed_set.eval_prompts, config.seed, config.cycles, config.samples_per_cycle,
        config.prompt_sampling,
    )  # fmt: skip
    eval_sets = config_eval_sets(trait, config)
    base = resolve_model(config.model)
    return Run(
        config=config,
        folder=output,
        manifest=Manifest(output / MANIFEST_FILE),
        trait=trait,
        method=method,
        base=base,
        seed_set=seed_set,
        seed_hash=content_hash(seed_set.path),
        slices=slices,
        main_eval=EvalSet(None, MAIN_SUITE if method.chat else "documents", NO_CONTEXT, seed_set.eval_prompts),
        eval_sets=eval_sets,
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


def _report_generation(run: Run, cycle: int | None, started: float, tracker: CycleLogger) -> None:
    """Evaluate generation ``cycle`` (main evaluation, then the config's eval sets) and print what it found."""
    main, *others = _evaluate_generation(run, cycle, [run.main_eval, *run.eval_sets.values()])
    run.console.print(_cycle_line(main, time.perf_counter() - started))
    for metrics in others:
        run.console.print(_cycle_line(metrics, 0.0).rsplit("  (", 1)[0])
    tracker.log(main)


def _run_locked(run: Run, force: bool) -> pd.DataFrame:
    """The run itself, while this process holds the run folder's lock."""
    config, output = run.config, run.folder
    _check_config_unchanged(run, force)
    note_precision(run)
    _write_run_header(run)
    tracker = CycleLogger(config.report_to, output, run.manifest.data["name"], config_to_dict(config))
    started = time.perf_counter()
    _report_generation(run, None, started, tracker)
    for cycle in range(config.cycles + 1):
        started = time.perf_counter()
        label = cycle_dir_name(cycle)
        method = run.method_for(cycle)
        make_data = lambda c=cycle: _build_data(run, c)  # noqa: E731
        data = _run_stage(
            run, f"{label}/data", method.data_upstream(run, cycle), method.data_outputs(run, cycle), make_data
        )
        upstream = {"data": data["outputs"][TRAIN_DATA], **method.train_upstream(run, cycle)}
        if not config.starts_from_base(cycle):
            upstream["weights"] = run.weights_hash(cycle - 1)
        outputs = [] if _is_control_seed(run, cycle) else [WEIGHTS]
        _run_stage(run, f"{label}/train", upstream, outputs, lambda c=cycle: _train(run, c))
        _report_generation(run, cycle, started, tracker)
    tracker.close()
    return _write_summary(run)


def evaluate_run(
    folder: Path,
    eval_sets: dict[str, EvalSet],
    generations: list[int | None] | None = None,
    force: bool = False,
    console: Console | None = None,
) -> pd.DataFrame:
    """Evaluate finished generations of the run in ``folder`` on more eval sets (``traitloop eval``), without
    retraining: resumable and hash-checked like the run's own stages, stored in ``evals/<set>/``, and added to
    its summary.csv. ``generations``: the base (None) and cycle numbers; default every current one."""
    console = console or Console()
    quiet_libraries()
    config = open_run_folder(folder).config
    run = _open_run(config, folder, console)
    clash = sorted(set(eval_sets) & set(run.eval_sets))
    if clash:
        raise UserError(f"{folder} already evaluates {clash[0]!r} every generation (its config); pick another --name")
    with RunLock(folder):
        run.manifest = Manifest(folder / MANIFEST_FILE)
        run.eval_sets.update(eval_sets)
        finished = RunFolder(folder, config, run.manifest)
        wanted = finished.current_generations() if generations is None else generations
        unfinished = [generation_label(c) for c in wanted if not finished.generation_current(c)]
        if unfinished:
            raise UserError(
                f"{folder}: {', '.join(unfinished)} has no current evaluation to build on; finish the run first "
                "(traitloop run) or leave it out of --generations"
            )
        _check_eval_sets_unchanged(run, list(eval_sets), force)
        for cycle in wanted:
            for metrics in _evaluate_generation(run, cycle, list(eval_sets.values())):
                label = "base model" if cycle is None else f"generation {cycle}"
                console.print(_cycle_line(metrics, 0.0).rsplit("  (", 1)[0].replace("  ", f"{label} ", 1))
        return _write_summary(run)


def _check_eval_sets_unchanged(run: Run, names: list[str], force: bool) -> None:
    """An eval set evaluated before with other questions, contexts or settings is refused, or redone with ``force``
    (what it held is moved aside, as a forced run moves its stages)."""
    changed = {}
    for stage, record in run.manifest.stages.items():
        if eval_set_of(stage) in names:
            fields = _changed_fields(record["inputs"]["config"], _config_inputs(run, stage))
            if fields:
                changed[stage] = fields
    if not changed:
        return
    first = next(iter(changed))
    if not force:
        raise UserError(
            f"eval set {eval_set_of(first)!r} was made with other {', '.join(changed[first])} (stage {first}); use "
            "--force to redo it, or another --name"
        )
    moved = supersede(run.folder, list(changed), run.manifest, "--force: the eval set changed")
    run.console.print(f"[yellow]--force: redoing {len(changed)} evaluations; the old ones are kept in {moved}[/]")
    for stage in changed:
        run.manifest.forget(stage)
