"""The cycle engine: seed cycle, self-training cycles and evaluation, written to a resumable run directory.

Each cycle has three stages - ``data`` (what the generation trains on), ``train`` (its weights) and
``eval`` (its answers, scores and metrics). A stage is skipped only when the manifest says it finished with
the same inputs and its outputs still hash the same; every stage is seeded from the config's seed and its
own name, so a stage redone after a kill produces exactly what it would have the first time.
"""

from __future__ import annotations

import json
import random
import time
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from traitloop.config import ExperimentConfig, config_to_dict
from traitloop.errors import UserError
from traitloop.generate import LocalGenerator, SamplingParams
from traitloop.judge import (
    Item,
    Judge,
    base_nll_scorer,
    embedded_coherence_judge,
    embedded_coherence_judge_id,
    embedded_trait_judge,
    embedded_trait_judge_id,
)
from traitloop.judge._specs import server_judge
from traitloop.loop._evaluate import base_view, evaluate_generation, metrics_from_records
from traitloop.loop._progress import StageProgress
from traitloop.loop._rundir import (
    Manifest,
    atomic_write_json,
    atomic_write_text,
    content_hash,
    environment,
    save_config,
    value_hash,
    write_jsonl,
)
from traitloop.models import is_adapter, load_model, load_tokenizer, resolve_model
from traitloop.train import train_sft
from traitloop.traits import (
    Conversation,
    TraitSpec,
    load_conversations,
    load_prompt_pool,
    load_trait,
    prompt_slices,
)

METRICS_SCHEMA_VERSION = 1
BASE = "base"


def cycle_dir_name(cycle: int) -> str:
    return f"cycle_{cycle:03d}"


def stage_cycle(stage: str) -> int | None:
    """The cycle a stage name such as ``cycle_003/train`` belongs to; None for the base model's stages."""
    folder = stage.split("/")[0]
    return None if folder == BASE else int(folder.removeprefix("cycle_"))


def stage_seed(seed: int, stage: str) -> int:
    """A per-stage seed: fixed by the run's seed and the stage's name, independent of run order."""
    return zlib.crc32(f"{seed}:{stage}".encode())


@dataclass
class _Run:
    """Everything resolved once per run."""

    config: ExperimentConfig
    folder: Path
    manifest: Manifest
    trait: TraitSpec
    base: str
    seeds: list[Conversation]
    seed_hash: str
    slices: list[list[str]]
    console: Console
    progress: StageProgress

    @cached_property
    def trait_judge(self) -> Judge:
        spec = self.config.judge.trait
        return embedded_trait_judge(self.trait) if spec.kind == "embedded" else self._server_trait_judge

    @cached_property
    def _server_trait_judge(self):
        return server_judge(self.config.judge.trait, self.trait, "trait")

    @cached_property
    def _server_coherence_judge(self):
        return server_judge(self.config.judge.coherence, None, "coherence")

    @cached_property
    def trait_ref(self) -> str:
        """Name, version and content hash: what identifies the trait data a stage used."""
        return f"{self.trait.name}@v{self.trait.version}/{self.trait.content_hash()}"

    @cached_property
    def judge_ids(self) -> list[str]:
        """Each judge's id - for a server judge its model, server, template version and scoring mode - so
        a changed judge redoes the evaluations (its cache makes repeated judgements free)."""
        judges = self.config.judge
        trait = (
            embedded_trait_judge_id(self.trait)
            if judges.trait.kind == "embedded"
            else self._server_trait_judge.judge_id
        )
        coherence = (
            embedded_coherence_judge_id(self.config.model)
            if judges.coherence.kind == "embedded"
            else self._server_coherence_judge.judge_id
        )
        return [trait, coherence]

    def coherence_judge(self, nll: Any) -> Judge:
        if self.config.judge.coherence.kind == "embedded":
            return embedded_coherence_judge(nll, self.config.model)
        return self._server_coherence_judge

    def tokenizer(self):
        return load_tokenizer(self.base, self.config.trust_remote_code)

    def model(self, weights: Path | None = None):
        return load_model(self.base, weights, trust_remote_code=self.config.trust_remote_code)

    def weights(self, cycle: int) -> Path:
        return self.folder / cycle_dir_name(cycle) / "adapter"


def _config_inputs(run: _Run, stage: str) -> dict[str, Any]:
    """The config values a stage depends on, by field name, so a change can be reported by name."""
    c = config_to_dict(run.config)
    cycle = stage_cycle(stage)
    kind = stage.split("/")[1]
    if kind == "eval":
        fields = {"trait": run.trait_ref, "evaluation": c["evaluation"], "seed": c["seed"]}
        return {"model": c["model"], **fields} if cycle is None else fields
    if kind == "train":
        fields = {"model": c["model"], "method": c["method"], "training": c["training"], "seed": c["seed"]}
        return {**fields, "regime": c["regime"]} if cycle else fields
    if cycle == 0:
        return {"seed_file": run.seed_hash, "seed_examples": c["seed_examples"]}
    fields = {
        "prompt_pool": value_hash(run.slices[cycle - 1]),
        "samples_per_cycle": c["samples_per_cycle"],
        "seed": c["seed"],
        "generation": c["generation"],
        "mix_seed_examples": c["mix_seed_examples"],
        "min_coherence": c["min_coherence"],
    }
    return {**fields, "seed_file": run.seed_hash} if c["mix_seed_examples"] else fields


def _planned_stages(cycles: int) -> list[str]:
    stages = [f"{BASE}/eval"]
    for cycle in range(cycles + 1):
        stages += [f"{cycle_dir_name(cycle)}/{kind}" for kind in ("data", "train", "eval")]
    return stages


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


def _check_config_unchanged(run: _Run, force: bool) -> None:
    """Refuse to mix results of two configs in one run folder; with ``force``, redo from the first change."""
    first_changed: tuple[int, str, list[str]] | None = None
    for index, stage in enumerate(_planned_stages(run.config.cycles)):
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
    for later in _planned_stages(max(run.config.cycles, _recorded_cycles(run.manifest)))[index:]:
        run.manifest.forget(later)


def _recorded_cycles(manifest: Manifest) -> int:
    return max((c for c in map(stage_cycle, manifest.stages) if c is not None), default=0)


def _run_stage(run: _Run, stage: str, upstream: dict[str, str], outputs: list[str], work) -> dict[str, Any]:
    """Run ``work()`` unless the stage is already done with these inputs; return the stage's record."""
    folder = run.folder / stage.split("/")[0]
    inputs = {"config": _config_inputs(run, stage), "upstream": upstream}
    if run.manifest.is_done(stage, inputs, folder):
        return run.manifest.stages[stage]
    started = time.perf_counter()
    facts = work() or {}
    hashes = {name: content_hash(folder / name) for name in outputs}
    run.manifest.record(stage, inputs, hashes, seconds=round(time.perf_counter() - started, 2), **facts)
    return run.manifest.stages[stage]


def _seed_data(run: _Run) -> dict[str, Any]:
    rows = [{**c.model_dump(), "source": "seed"} for c in run.seeds[: run.config.seed_examples]]
    write_jsonl(run.folder / cycle_dir_name(0) / "train.jsonl", rows)
    return {"examples": len(rows)}


def _self_generated_data(run: _Run, cycle: int) -> dict[str, Any]:
    """Generation k-1 answers cycle k's fresh prompts; those answers (optionally filtered, mixed) are the data."""
    config = run.config
    prompts = run.slices[cycle - 1]
    model, tokenizer = run.model(run.weights(cycle - 1)), run.tokenizer()
    params = SamplingParams(
        **config.generation.model_dump(), seed=stage_seed(config.seed, f"{cycle_dir_name(cycle)}/data")
    )
    with run.progress.task(
        f"cycle {cycle}: generation {cycle - 1} answers {len(prompts)} prompts", len(prompts)
    ) as step:
        started = time.perf_counter()
        answers = LocalGenerator(model, tokenizer).generate(
            [[{"role": "user", "content": p}] for p in prompts], params, step
        )
        generation_seconds = time.perf_counter() - started
    answer_tokens = sum(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers)
    rows = [
        {
            "messages": [{"role": "user", "content": p}, {"role": "assistant", "content": a}],
            "source": cycle_dir_name(cycle - 1),
        }
        for p, a in zip(prompts, answers, strict=True)
        if a.strip()
    ]
    generated = len(rows)
    if config.min_coherence is not None:
        rows = _filter_by_coherence(run, model, tokenizer, rows)
    if not rows:
        raise UserError(
            f"cycle {cycle}: no usable answers to train on ({len(prompts)} generated, {generated} non-empty, "
            f"min_coherence={config.min_coherence}); lower min_coherence or check the previous generation"
        )
    kept = len(rows)
    if config.mix_seed_examples:
        rng = random.Random(stage_seed(config.seed, f"{cycle_dir_name(cycle)}/mix"))
        mixed = rng.sample(run.seeds, min(config.mix_seed_examples, len(run.seeds)))
        rows += [{**c.model_dump(), "source": "seed"} for c in mixed]
    write_jsonl(run.folder / cycle_dir_name(cycle) / "train.jsonl", rows)
    return {
        "examples": len(rows),
        "generated": len(prompts),
        "kept_generated": kept,
        "answer_tokens": answer_tokens,
        "generation_tokens_per_second": round(answer_tokens / generation_seconds, 2),
    }


def _filter_by_coherence(run: _Run, model, tokenizer, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items = [Item(r["messages"][0]["content"], r["messages"][1]["content"]) for r in rows]
    with base_view(model):
        judgements = run.coherence_judge(base_nll_scorer(model, tokenizer))(items)
    threshold = run.config.min_coherence
    kept = []
    for row, judgement in zip(rows, judgements, strict=True):
        if judgement.score is not None and judgement.score >= threshold:
            kept.append({**row, "coherence_score": judgement.score})
    return kept


def _train(run: _Run, cycle: int) -> dict[str, Any]:
    folder = run.folder / cycle_dir_name(cycle)
    conversations = load_conversations(folder / "train.jsonl")
    start_from = run.weights(cycle - 1) if cycle > 0 and run.config.regime == "continual" else None
    config = run.config.training
    with run.progress.task(f"cycle {cycle}: training on {len(conversations)} examples", None) as step:
        result = train_sft(
            run.base,
            conversations,
            run.weights(cycle),
            config,
            seed=stage_seed(run.config.seed, f"{cycle_dir_name(cycle)}/train"),
            start_from=start_from,
            on_step=step.set_total_and_position,
            trust_remote_code=run.config.trust_remote_code,
        )
    return {
        "examples": result.examples,
        "steps": result.steps,
        "train_seconds": round(result.seconds, 2),
        "examples_per_second": round(result.examples_per_second, 3),
        "loss_first": round(result.losses[0], 4) if result.losses else None,
        "loss_last": round(result.losses[-1], 4) if result.losses else None,
        "started_from": cycle_dir_name(cycle - 1) if start_from else BASE,
    }


def _evaluate(run: _Run, cycle: int | None) -> dict[str, Any]:
    """Evaluate the base model (``cycle=None``) or generation ``cycle``; write eval.jsonl and metrics.json."""
    label = BASE if cycle is None else cycle_dir_name(cycle)
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
    questions = run.trait.eval_questions
    name = "base model" if cycle is None else f"generation {cycle}"
    with run.progress.task(f"evaluating {name}", len(questions) * config.eval_samples) as step:
        records = evaluate_generation(
            model,
            base_model,
            tokenizer,
            questions,
            config.eval_samples,
            params,
            run.trait_judge,
            run.coherence_judge,
            cycle,
            step,
        )
    folder = run.folder / label
    write_jsonl(folder / "eval.jsonl", [r.model_dump() for r in records])
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
            k: train.get(k) for k in ("examples", "steps", "loss_first", "loss_last", "started_from")
        }
    atomic_write_json(folder / "metrics.json", metrics)
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
    }


def _write_summary(run: _Run) -> pd.DataFrame:
    labels = [BASE] + [cycle_dir_name(c) for c in range(run.config.cycles + 1)]
    rows = [_summary_row(json.loads((run.folder / label / "metrics.json").read_text())) for label in labels]
    table = pd.DataFrame(rows)
    atomic_write_text(run.folder / "summary.csv", table.to_csv(index=False))
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


def _open_run(config: ExperimentConfig, output: Path, console: Console) -> _Run:
    """Resolve the trait, model, seed set and prompt slices, checking every input before any work starts."""
    trait = load_trait(config.trait)
    seed_path = config.seed_file or trait.seed_path
    seeds = load_conversations(seed_path)
    slices = prompt_slices(
        load_prompt_pool(config.prompt_pool),
        trait.eval_questions,
        config.seed,
        config.cycles,
        config.samples_per_cycle,
    )
    if config.seed_examples > len(seeds):
        raise UserError(f"seed_examples is {config.seed_examples} but {seed_path} has only {len(seeds)} conversations")
    base = resolve_model(config.model)
    output.mkdir(parents=True, exist_ok=True)
    return _Run(
        config=config,
        folder=output,
        manifest=Manifest(output / "manifest.json"),
        trait=trait,
        base=base,
        seeds=seeds,
        seed_hash=content_hash(seed_path),
        slices=slices,
        console=console,
        progress=StageProgress(console),
    )


def _write_run_header(run: _Run) -> None:
    save_config(run.folder / "config.yaml", config_to_dict(run.config))
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
    run = _open_run(config, output, console)
    _check_config_unchanged(run, force)
    _write_run_header(run)
    started = time.perf_counter()
    _run_stage(
        run, f"{BASE}/eval", {"judges": run.judge_ids}, ["eval.jsonl", "metrics.json"], lambda: _evaluate(run, None)
    )
    console.print(_cycle_line(json.loads((output / BASE / "metrics.json").read_text()), time.perf_counter() - started))
    for cycle in range(config.cycles + 1):
        started = time.perf_counter()
        label = cycle_dir_name(cycle)
        previous = (
            {}
            if cycle == 0
            else {"weights": run.manifest.stages[f"{cycle_dir_name(cycle - 1)}/train"]["outputs"]["adapter"]}
        )
        make_data = (lambda: _seed_data(run)) if cycle == 0 else (lambda c=cycle: _self_generated_data(run, c))
        data = _run_stage(run, f"{label}/data", previous, ["train.jsonl"], make_data)
        upstream = {"data": data["outputs"]["train.jsonl"]}
        if cycle > 0 and config.regime == "continual":
            upstream.update(previous)
        train = _run_stage(run, f"{label}/train", upstream, ["adapter"], lambda c=cycle: _train(run, c))
        _run_stage(
            run,
            f"{label}/eval",
            {"weights": train["outputs"]["adapter"], "judges": run.judge_ids},
            ["eval.jsonl", "metrics.json"],
            lambda c=cycle: _evaluate(run, c),
        )
        metrics = json.loads((output / label / "metrics.json").read_text())
        console.print(_cycle_line(metrics, time.perf_counter() - started))
    return _write_summary(run)
