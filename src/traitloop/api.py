"""The Python API, mirroring the CLI: ``run``, ``status``, ``evaluate``, ``judge_file``, ``report``, ``verdict``,
``sweep``, ``sweep_status``, ``calibrate``, ``list_models``, ``pull_model``, ``new_trait``, ``validate_trait``,
``list_traits``, ``new_pool``, ``import_pool``."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from traitloop import config as _config
from traitloop._atomic import atomic_write_json, write_jsonl
from traitloop._progress import Progress
from traitloop.analysis import Report, RunVerdict, Thresholds, analyze_run, load_eval_sets, load_run, write_report
from traitloop.author import Settings, default_output, make_writer, read_description, trait_rows, write_generated_pool
from traitloop.author import import_pool as filter_pool_file
from traitloop.author import new_trait as author_trait
from traitloop.author import validate_trait as validate
from traitloop.config import ExperimentConfig, default_run_folder
from traitloop.errors import UserError
from traitloop.judge import (
    Agreement,
    Judge,
    NllScorer,
    agreement,
    judge_kind,
    judge_label,
    parse_judge_option,
    read_items,
    score_rows,
)
from traitloop.loop import check_config, evaluate_run, question_sets, quiet_libraries, run_experiment, suite_questions
from traitloop.models import REGISTRY, is_cached, load_model, load_tokenizer, pull, resolve_model
from traitloop.rundir import RunFolder, generation_label, generations, open_run_folder
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
) -> Path:
    """Run or resume an experiment; returns the run folder. ``config`` is a config object or a YAML path."""
    if not isinstance(config, ExperimentConfig):
        config = load_config(Path(config), overrides)
    elif overrides:
        raise UserError("overrides apply to a config file; change the ExperimentConfig object directly instead")
    folder = Path(output) if output else default_run_folder(config.name)
    run_experiment(config, folder, force=force, console=console)
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


def parse_generations(text: str) -> list[int | None] | None:
    """``all`` (None: every current generation) or a comma-separated list such as ``base,0,3``."""
    if text.strip() == "all":
        return None
    chosen: list[int | None] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part == "base":
            chosen.append(None)
        elif part.isdigit():
            chosen.append(int(part))
        else:
            raise UserError(f"bad --generations {text!r}: expected 'all' or a list such as base,0,3")
    return chosen


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
            }
        )
    listed = {row["cycle"] for row in rows}
    for label in run.ignored_generations():  # evaluated generations beyond the config's cycles
        if label not in listed:
            rows.append({"cycle": label, "data": "", "train": "", "eval": "ignored", "trait": "", "coherence": "",
                         "trained": ""})  # fmt: skip
    return rows


def _judge_pair(spec, trait_spec, model: str, nll_scorer, progress: Progress) -> tuple[Judge, Judge]:
    """The trait and coherence judges one ``--judge`` option names (a server judge scores both)."""
    kind = judge_kind(spec)
    return kind.trait_judge(spec, trait_spec, True, progress), kind.coherence_judge(spec, nll_scorer, model)


def _score_file(
    trait: str, input: Path, model: str, judges: list[str], api_key_env: str | None, console: Console | None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of ``input`` scored by every judge, each judge's progress shown on ``console``: the first judge's
    scores in the usual columns and, with several judges, each judge's scores under ``judgements[label]``."""
    spec = load_trait(trait)
    specs = [parse_judge_option(j, api_key_env) for j in judges]
    rows, items = read_items(input)
    quiet_libraries()
    nll: list[Any] = []

    def nll_scorer():
        if not nll:
            base = resolve_model(model)
            nll.append(NllScorer(load_model(base), load_tokenizer(base)))
        return nll[0]

    labels = [judge_label(s) for s in specs]
    for index, (label, judge_spec) in enumerate(zip(labels, specs, strict=True)):
        scores: list[dict[str, Any]] = [{} for _ in rows]
        progress = Progress(console)
        score_rows(scores, items, *_judge_pair(judge_spec, spec, model, nll_scorer, progress), progress, label)
        for row, by_this_judge in zip(rows, scores, strict=True):
            if len(specs) > 1:
                row.setdefault("judgements", {})[label] = by_this_judge
            if index == 0:
                row.update(by_this_judge)
    return rows, labels


def judge_file(
    trait: str,
    input: Path,
    output: Path,
    model: str = "smollm2-135m-instruct",
    judges: list[str] | None = None,
    api_key_env: str | None = None,
    console: Console | None = None,
) -> int:
    """Score every row of ``input`` for trait and coherence; write ``output``; return the number of rows.

    ``judges`` are ``embedded`` (default; ``model`` is the base model of its coherence judge) or
    ``openai:MODEL@URL`` server judges, whose API key is read from the environment variable ``api_key_env``.
    Progress goes to ``console``: a bar on a terminal, a plain line now and then elsewhere.
    """
    rows, _ = _score_file(trait, input, model, judges or ["embedded"], api_key_env, console)
    write_jsonl(output, rows)
    return len(rows)


def report(
    run_dirs: list[Path], output: Path | None = None, compare: bool = False, thresholds: Thresholds | None = None
) -> Report:
    """Write the HTML report (and plots, Parquet table) for one run, or a comparison of several."""
    if not run_dirs:
        raise UserError("report needs at least one run folder")
    runs = [load_run(folder) for folder in run_dirs]
    eval_sets = [results for folder in run_dirs for results in load_eval_sets(folder)]
    if output is None:
        output = Path("compare.html") if compare or len(runs) > 1 else Path(run_dirs[0]) / "report.html"
    return write_report(runs, Path(output), thresholds, eval_sets)


def verdict(run_dir: Path, thresholds: Thresholds | None = None, eval_set: str | None = None) -> RunVerdict:
    """Did the trait amplify in this run (on its main evaluation, or on ``eval_set``)? Every test, statistic
    and threshold behind the answer."""
    return analyze_run(load_run(run_dir, eval_set), thresholds)


def eval_set_verdicts(run_dir: Path, thresholds: Thresholds | None = None) -> list[RunVerdict]:
    """The run's verdict on each of its other eval sets (suites, contexts, ``traitloop eval`` question files)."""
    return [analyze_run(results, thresholds) for results in load_eval_sets(run_dir)]


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


def judge_agreement(
    trait: str,
    input: Path,
    judges: list[str],
    output: Path | None = None,
    model: str = "smollm2-135m-instruct",
    api_key_env: str | None = None,
    console: Console | None = None,
) -> list[Agreement]:
    """Score ``input`` with two or more judges and compare each later judge with the first, for trait and
    coherence: Spearman correlation, mean absolute difference, Bland-Altman bias and limits of agreement."""
    if len(judges) < 2:
        raise UserError("judge agreement needs at least two judges, e.g. --judge embedded,openai:MODEL@URL")
    rows, labels = _score_file(trait, input, model, judges, api_key_env, console)
    if output is not None:
        write_jsonl(output, rows)
    results = []
    for measure in ("trait", "coherence"):
        scores = {label: [row["judgements"][label][f"{measure}_score"] for row in rows] for label in labels}
        for other in labels[1:]:
            results.append(agreement(scores[labels[0]], scores[other], labels[0], other, measure))
    return results


def list_models() -> list[tuple[str, bool, str]]:
    return [(name, is_cached(name), spec.description) for name, spec in REGISTRY.items()]


def pull_model(name: str) -> Path:
    return pull(name)


def _given(**options: Any) -> dict[str, Any]:
    """The options a caller set, so that the rest keep their defaults from one place."""
    return {key: value for key, value in options.items() if value is not None}


def new_trait(
    name: str,
    description: str | None = None,
    *,
    from_file: Path | None = None,
    generator: str = "local",
    judge: str = "embedded",
    size: int = 300,
    seed_min: float | None = None,
    contrast_max: float | None = None,
    sdf: bool = False,
    output: Path | None = None,
    force: bool = False,
    api_key_env: str | None = None,
    cache: Path | None = None,
    seed_file: Path | None = None,
    seed_field: str | None = None,
    eval_questions: Path | None = None,
    max_rounds: int | None = None,
    max_requests: int | None = None,
    say: Callable[[str], None] = lambda _: None,
    console: Console | None = None,
) -> tuple[Path, Any]:
    """Write a trait folder from a description, or around a seed set (``traitloop trait new``); returns the
    folder and its report. Writing and judging show their progress on ``console``."""
    described = (description is not None) + (from_file is not None)
    if described > 1 or described == 0 and seed_file is None:
        raise UserError(
            "give the trait's description with --description TEXT or --from FILE (one of them), or a --seed-file"
        )
    text = read_description(Path(from_file)) if from_file is not None else description
    judge_spec = parse_judge_option(judge, api_key_env)
    writer = make_writer(generator, api_key_env=api_key_env, cache_path=cache, progress=Progress(console))
    folder = Path(output) if output else Path("traits") / name
    report = author_trait(
        name,
        text,
        writer,
        folder,
        judge=judge_label(judge_spec),
        judge_spec=judge_spec,
        settings=Settings(
            size=size,
            **_given(seed_min=seed_min, contrast_max=contrast_max, max_rounds=max_rounds, max_requests=max_requests),
        ),
        sdf=sdf,
        force=force,
        seed_file=seed_file,
        seed_field=seed_field,
        eval_questions=eval_questions,
        say=say,
    )
    return folder, report


def validate_trait(
    target: str | Path,
    output: Path | None = None,
    pool: str | Path | None = None,
    pool_field: str | None = None,
    console: Console | None = None,
) -> tuple[dict[str, Any], Path]:
    """Validate a trait folder (``traitloop trait validate``), its progress shown on ``console``, and save
    ``validation.json``."""
    report = validate(target, pool, pool_field, progress=Progress(console))
    path = Path(output) if output else default_output(target)
    atomic_write_json(path, report)
    return report, path


def list_traits(folders: list[Path] | None = None) -> list[dict[str, Any]]:
    """Built-in traits and the given trait folders, with sizes and versions (``traitloop trait list``)."""
    return trait_rows(folders)


def new_pool(
    output: Path,
    generator: str = "local",
    size: int = 500,
    categories: list[str] | None = None,
    api_key_env: str | None = None,
    cache: Path | None = None,
) -> Any:
    """An LLM-written prompt pool over categories (``traitloop pool new``), written with its provenance."""
    writer = make_writer(generator, api_key_env=api_key_env, cache_path=cache)
    return write_generated_pool(writer, output, size, categories)


def import_pool(source: Path, output: Path, field: str | None = None) -> Any:
    """Filter any pool file into a pool with its provenance (``traitloop pool import``)."""
    return filter_pool_file(Path(source), Path(output), field)
