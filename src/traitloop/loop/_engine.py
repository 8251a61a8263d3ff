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

import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from traitloop._atomic import atomic_write_text
from traitloop._progress import Progress
from traitloop.config import ExperimentConfig, config_to_dict
from traitloop.errors import UserError
from traitloop.loop._evals import EvalSet
from traitloop.loop._inputs import check_config_unchanged, check_eval_sets_unchanged
from traitloop.loop._plan import check_memory, gib
from traitloop.loop._precision import check_gpus, describe_precision, note_precision
from traitloop.loop._progress import quiet_libraries
from traitloop.loop._resolve import resolve
from traitloop.loop._run import Run
from traitloop.loop._stages import build_data_stage, evaluate_generation_stages, is_control_seed, run_stage, train_stage
from traitloop.loop._trackers import CycleLogger
from traitloop.models import resolve_model
from traitloop.rundir import (
    BASE,
    CONFIG_FILE,
    MANIFEST_FILE,
    SUMMARY_FILE,
    TRAIN_DATA,
    WEIGHTS,
    Manifest,
    RunFolder,
    RunLock,
    SharedStages,
    content_hash,
    cycle_dir_name,
    environment,
    generation_label,
    open_run_folder,
    save_config,
    summary_rows,
)


def _write_summary(run: Run) -> pd.DataFrame:
    """summary.csv: one row per generation and eval set (the main evaluation first), current results only."""
    rows = summary_rows(RunFolder(run.folder, run.config, run.manifest))
    table = pd.DataFrame([{**row, "cycle": BASE if row["cycle"] is None else row["cycle"]} for row in rows])
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
    resolved = resolve(config)
    if resolved.problems:
        raise UserError(resolved.problems[0])
    return Run(
        config=config,
        folder=output,
        manifest=Manifest(output / MANIFEST_FILE),
        trait=resolved.trait,
        method=resolved.method,
        base=resolve_model(config.model),
        seed_set=resolved.seed_set,
        seed_hash=content_hash(resolved.seed_set.path),
        slices=resolved.slices,
        main_eval=resolved.main_eval,
        eval_sets=dict(resolved.eval_sets),
        console=console,
        progress=Progress(console),
    )


def _write_run_header(run: Run) -> None:
    """The config and the run's facts. ``environment`` is the session's that began the run: a resumed run keeps
    it, and each stage records the commit that made it (``rundir.recorded_git_hashes``)."""
    save_config(run.folder / CONFIG_FILE, config_to_dict(run.config))
    run.manifest.data.update(
        {
            "name": run.config.name or run.folder.name,
            "seed": run.config.seed,
            "trait": {"name": run.trait.name, "version": run.trait.version, "hash": run.trait.content_hash()},
            "model": {"name": run.config.model, "resolved": run.base},
        }
    )
    run.manifest.data.setdefault("environment", environment())
    run.manifest.save()


def run_experiment(
    config: ExperimentConfig,
    output: Path,
    force: bool = False,
    console: Console | None = None,
    shared: Path | None = None,
    gpu_memory: str | int | None = None,
    memory_check: bool = True,
) -> pd.DataFrame:
    """Run (or resume) an experiment into ``output`` and return its per-cycle summary table. ``shared``: a store
    of stages runs share (a sweep's ``shared/``), from which the base model's evaluation is taken when another
    run made it with the same inputs, or where it is put for the others once made.

    On a GPU, or given ``gpu_memory`` (``80GiB``), a run whose plan says a stage will not fit is refused before
    any work, naming the stage and the settings to change (``memory_check=False`` runs it anyway). On a CPU with
    no memory given there is nothing to check, and nothing is planned."""
    console = console or Console()
    quiet_libraries()
    run = _open_run(config, output, console)
    run.shared = SharedStages(shared) if shared is not None else None
    plan = check_memory(config, gpu_memory) if memory_check else None
    if plan is not None and plan.peak is not None:
        console.print(
            f"memory: every stage fits {plan.target.source} ({gib(plan.target.budget or 0)}); the largest, "
            f"{plan.peak.stage}, about {gib(plan.peak.peak)}"
        )
    output.mkdir(parents=True, exist_ok=True)
    with RunLock(output) as lock:
        if lock.taken_over:
            console.print(f"[yellow]taking over {output}: its last process ({lock.taken_over.get('pid')}) stopped[/]")
        run.manifest = Manifest(output / MANIFEST_FILE)  # read again now that no other process can write it
        return _run_locked(run, force)


def _report_generation(run: Run, cycle: int | None, started: float, tracker: CycleLogger) -> None:
    """Evaluate generation ``cycle`` (main evaluation, then the config's eval sets) and print what it found."""
    main, *others = evaluate_generation_stages(run, cycle, [run.main_eval, *run.eval_sets.values()])
    run.console.print(_cycle_line(main, time.perf_counter() - started))
    for metrics in others:
        run.console.print(_cycle_line(metrics, 0.0).rsplit("  (", 1)[0])
    tracker.log(main)


def _run_locked(run: Run, force: bool) -> pd.DataFrame:
    """The run itself, while this process holds the run folder's lock."""
    config, output = run.config, run.folder
    check_config_unchanged(run, force)
    run.console.print(describe_precision(run.precision, run.config.device, run.training_precision), highlight=False)
    check_gpus(run)
    note_precision(run)
    _write_run_header(run)
    tracker = CycleLogger(config.report_to, output, run.manifest.data["name"], config_to_dict(config))
    started = time.perf_counter()
    _report_generation(run, None, started, tracker)
    for cycle in range(config.cycles + 1):
        started = time.perf_counter()
        label = cycle_dir_name(cycle)
        method = run.method_for(cycle)
        make_data = lambda c=cycle: build_data_stage(run, c)  # noqa: E731
        data = run_stage(
            run, f"{label}/data", method.data_upstream(run, cycle), method.data_outputs(run, cycle), make_data
        )
        upstream = {"data": data["outputs"][TRAIN_DATA], **method.train_upstream(run, cycle)}
        if not config.starts_from_base(cycle):
            upstream["weights"] = run.weights_hash(cycle - 1)
        outputs = [] if is_control_seed(run, cycle) else [WEIGHTS]
        run_stage(run, f"{label}/train", upstream, outputs, lambda c=cycle: train_stage(run, c))
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
        check_eval_sets_unchanged(run, list(eval_sets), force)
        for cycle in wanted:
            for metrics in evaluate_generation_stages(run, cycle, list(eval_sets.values())):
                label = "base model" if cycle is None else f"generation {cycle}"
                console.print(_cycle_line(metrics, 0.0).rsplit("  (", 1)[0].replace("  ", f"{label} ", 1))
        return _write_summary(run)
