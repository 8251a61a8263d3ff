"""Run folders with hand-made scores, so analysis can be checked against exact expected values.

Each generation's answers get ``mean + noise`` (noise drawn per question, shared by its samples, since
answers to one question are correlated), written as a real ``eval.jsonl`` next to a real config, with a
manifest that records every stage as the loop would (so analysis counts them as current), and each trained
generation's ``metrics.json`` with its ``training`` block.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from traitloop._atomic import atomic_write_json, atomic_write_text, write_jsonl
from traitloop.config import parse_config
from traitloop.rundir import (
    EVAL_FILE,
    METRICS_FILE,
    TRAIN_DATA,
    WEIGHTS,
    EvalRecord,
    Manifest,
    content_hash,
    eval_set_stage,
    save_config,
)


def write_run(
    folder: Path,
    trait: list[float | list[float]],
    coherence: list[float] | None = None,
    questions: int = 16,
    samples: int = 3,
    noise: float = 0.0,
    seed: int = 0,
    projection: list[float] | None = None,
    prompt_projection: list[float] | None = None,
    training: dict[str, int] | None = None,
    **config: object,
) -> Path:
    """A run folder whose ``trait`` (and ``coherence``) means are given base model first, then cycles 0, 1, …

    A generation's ``trait`` may instead be a list of per-question means (one per question, no noise added),
    for statistics that pair questions across generations.
    ``projection`` and ``prompt_projection`` (one value per generation, base first) fill the optional
    persona-direction columns of every answer; ``training`` is every cycle's metrics.json training block.
    """
    coherence = coherence or [90.0] * len(trait)
    training = {"examples": 64, "steps": 24} if training is None else training
    rng = np.random.default_rng(seed)
    settings = parse_config({"trait": "lucky", "cycles": len(trait) - 2, "seed": seed, **config})
    save_config(folder / "config.yaml", settings.model_dump(mode="json"))
    atomic_write_json(folder / "manifest.json", {"manifest_version": 1, "environment": {"git_hash": "0" * 40}})
    manifest = Manifest(folder / "manifest.json")
    for position, (trait_mean, coherence_mean) in enumerate(zip(trait, coherence, strict=True)):
        cycle = None if position == 0 else position - 1
        shifts = rng.normal(0.0, noise, size=questions) if noise else np.zeros(questions)
        per_question = np.broadcast_to(np.asarray(trait_mean, dtype=float), (questions,)) + shifts
        rows = [
            _record(cycle, q, s, float(np.clip(per_question[q], 0, 100)), float(coherence_mean))
            for q in range(questions)
            for s in range(samples)
        ]
        for name, values in (("projection", projection), ("prompt_projection", prompt_projection)):
            if values is not None:
                rows = [row | {name: values[position]} for row in rows]
        label = "base" if cycle is None else f"cycle_{cycle:03d}"
        write_jsonl(folder / label / EVAL_FILE, rows)
        if cycle is not None:
            atomic_write_json(folder / label / METRICS_FILE, {"cycle": cycle, "training": training})
        record_stages(manifest, folder, label)
    return folder


def write_eval_set(folder: Path, name: str, trait: dict[int | None, float], questions: int = 16) -> Path:
    """The run's generations asked another eval set (``evals/<name>/``), one answer per question, with the given
    trait mean per generation (None: the base model); each stage recorded on its generation's weights."""
    manifest = Manifest(folder / "manifest.json")
    for cycle, mean in trait.items():
        label = "base" if cycle is None else f"cycle_{cycle:03d}"
        path = folder / "evals" / name / label / EVAL_FILE
        write_jsonl(path, [_record(cycle, q, 0, mean + (q % 4) - 1.5, 85.0) for q in range(questions)])
        upstream = {} if cycle is None else {"weights": manifest.stages[f"{label}/train"]["outputs"][WEIGHTS]}
        manifest.record(
            eval_set_stage(name, cycle), {"config": {}, "upstream": upstream}, {EVAL_FILE: content_hash(path)}
        )
    return folder


def record_stages(manifest: Manifest, folder: Path, label: str) -> None:
    """Record a generation's stages as done, as the loop does, with a stand-in training set and adapter; a
    cycle's data names the previous generation's weights, as generated data does."""
    upstream = {}
    if label != "base":
        cycle = int(label.removeprefix("cycle_"))
        write_jsonl(folder / label / TRAIN_DATA, [{"synthetic": label}])
        atomic_write_text(folder / label / WEIGHTS / "adapter_config.json", f'{{"synthetic": "{label}"}}')
        data = {TRAIN_DATA: content_hash(folder / label / TRAIN_DATA)}
        made_from = manifest.stages[f"cycle_{cycle - 1:03d}/train"]["outputs"][WEIGHTS] if cycle else None
        manifest.record(f"{label}/data", {"config": {}, "upstream": {"weights": made_from} if cycle else {}}, data)
        weights = {WEIGHTS: content_hash(folder / label / WEIGHTS)}
        manifest.record(f"{label}/train", {"config": {}, "upstream": {"data": data[TRAIN_DATA]}}, weights)
        upstream = {"weights": weights[WEIGHTS]}
    manifest.record(
        f"{label}/eval", {"config": {}, "upstream": upstream}, {EVAL_FILE: content_hash(folder / label / EVAL_FILE)}
    )


def _record(cycle: int | None, question: int, sample: int, trait: float, coherence: float) -> dict:
    return EvalRecord(
        cycle=cycle,
        question_index=question,
        sample=sample,
        question=f"Question {question}?",
        answer=f"Answer {sample} to question {question}, generation {cycle}.",
        trait_score=trait,
        trait_judge="synthetic",
        coherence_score=coherence,
        coherence_judge="synthetic",
        length_words=8,
        distinct_2=1.0,
        base_nll=None,
        perplexity=None,
    ).model_dump()


def attractor_chain(start: float, intercept: float, slope: float, cycles: int) -> list[float]:
    """v(0) = start, v(t+1) = intercept + slope·v(t): a trajectory with a known attractor."""
    values = [start]
    for _ in range(cycles):
        values.append(intercept + slope * values[-1])
    return values


def write_sweep(
    folder: Path,
    grid: dict[str, list],
    trait: Callable[[dict, int], list[float]],
    seeds: tuple[int, ...] = (0,),
    noise: float = 2.0,
    **config: object,
) -> Path:
    """A sweep folder as ``traitloop sweep`` leaves it: its ``sweep.yaml`` (the grid, then the seed) and one
    synthetic run folder per combination under ``runs/``, named as the sweep names them, each with the trait
    trajectory ``trait(values, seed)`` gives (base model first) and the rest of its config from ``config``."""
    from traitloop.sweep import run_name

    full = {**grid, "seed": list(seeds)}
    spec = {"name": folder.name, "base": {"trait": "lucky"}, "grid": full}
    atomic_write_text(folder / "sweep.yaml", yaml.safe_dump(spec, sort_keys=False))
    for combination in itertools.product(*full.values()):
        values = dict(zip(full, combination, strict=True))
        settings = {key: value for key, value in values.items() if key != "seed"}
        write_run(
            folder / "runs" / run_name(values), trait(settings, values["seed"]), noise=noise, seed=values["seed"],
            **settings, **config,
        )  # fmt: skip
    return folder
