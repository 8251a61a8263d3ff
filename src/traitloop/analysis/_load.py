"""Reading finished run folders back as data: the evaluations of every generation, and a table across runs.

Analysis works from ``eval.jsonl`` (every answer and its scores), not from the per-cycle aggregates, so that
statistics that pair cycles question by question (idempotence, attractor fit) can be computed at all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from traitloop.analysis._axes import axis_values, swept_fields
from traitloop.analysis._rate import rate_hit
from traitloop.analysis._verdict import Thresholds
from traitloop.config import ExperimentConfig
from traitloop.errors import UserError
from traitloop.rundir import (
    EVAL_SCHEMA_VERSION,
    MEASURES,
    RunFolder,
    check_version,
    generation_row,
    open_run_folder,
    present,
    recorded_git_hashes,
)
from traitloop.stats import ScoreSummary, summarize_scores


@dataclass(frozen=True)
class RunResults:
    """One run folder on one eval set: its config, manifest, every evaluated answer (base model rows have
    ``cycle`` NaN) and each generation's training facts (the ``training`` block of its metrics.json: examples,
    steps, tokens). ``eval_set`` is None for the run's main evaluation, else the name of another suite, context
    or question file the run's generations were evaluated on (``evals/<name>/``)."""

    folder: Path
    config: ExperimentConfig
    manifest: dict[str, Any]
    evals: pd.DataFrame
    training: dict[int, dict[str, Any]] = field(default_factory=dict)
    eval_set: str | None = None

    @property
    def name(self) -> str:
        return self.config.name or self.folder.name

    @property
    def git_hashes(self) -> list[str]:
        """The commits whose code made this run's stages (``rundir.recorded_git_hashes``)."""
        return recorded_git_hashes(self.manifest)

    @property
    def cycles(self) -> list[int]:
        """Generations that have been evaluated, in order (the base model excluded)."""
        return sorted(int(c) for c in self.evals["cycle"].dropna().unique())

    def rows(self, cycle: int | None) -> pd.DataFrame:
        """One generation's answers (``None``: the base model)."""
        return self.evals[self.evals["cycle"].isna()] if cycle is None else self.evals[self.evals["cycle"] == cycle]

    def values(self, measure: str, rows: pd.DataFrame) -> list[float | None]:
        """One measure of ``rows`` (None where missing, or for every row where the run never recorded it)."""
        column = MEASURES[measure]
        if column not in rows:
            return [None] * len(rows)
        return [present(v) for v in rows[column]]

    def summary(self, measure: str, cycle: int | None) -> ScoreSummary:
        """Mean, bootstrap CI and standard error of one measure for one generation (``None``: the base model)."""
        rows = self.rows(cycle)
        return self._summarize(rows, self.values(measure, rows))

    def thresholded_rate(self, cycle: int | None, thresholds: Thresholds) -> ScoreSummary:
        """Share of one generation's answers meeting every condition of ``thresholds.rate`` (answers missing a
        score it needs left out), as a mean of per-question shares with the same question bootstrap as the scores."""
        rows = self.rows(cycle)
        conditions = thresholds.conditions
        columns = {c.measure: self.values(c.measure, rows) for c in conditions}
        hits = [rate_hit(conditions, {m: values[i] for m, values in columns.items()}) for i in range(len(rows))]
        return self._summarize(rows, hits)

    def _summarize(self, rows: pd.DataFrame, values: list[float | None]) -> ScoreSummary:
        return summarize_scores(
            rows["question_index"].tolist(), values, self.config.evaluation.bootstrap_resamples, self.config.seed
        )

    def question_means(self, measure: str, cycle: int | None) -> pd.Series:
        """Per-question mean of one measure for one generation, indexed by question (questions unscored: absent)."""
        rows = self.rows(cycle)
        values = pd.Series(self.values(measure, rows), index=rows["question_index"], dtype=float)
        return values.groupby(level=0).mean().dropna()

    def question_matrix(self, score: str) -> np.ndarray:
        """Questions × cycles of per-question mean scores (NaN where a question has no scored answer)."""
        rows = self.evals[self.evals["cycle"].notna()]
        table = rows.pivot_table(index="question_index", columns="cycle", values=MEASURES[score], aggfunc="mean")
        return table.reindex(columns=self.cycles).to_numpy(dtype=float)


def _read_evals(run: RunFolder, eval_set: str | None = None) -> pd.DataFrame:
    """Every answer of the generations whose evaluation (on ``eval_set``) is current, base model first."""
    frames = []
    for cycle in run.current_generations(eval_set):
        path = run.eval_path(cycle, eval_set)
        frame = pd.read_json(path, lines=True)
        versions = frame.get("schema_version", pd.Series(dtype=float)).dropna()
        check_version(int(versions.max()) if len(versions) else None, EVAL_SCHEMA_VERSION, str(path))
        frames.append(frame)
    if not frames:
        where = "" if eval_set is None else f" on eval set {eval_set!r}"
        raise UserError(f"{run.folder} has no current evaluated generation{where} yet; run it first (traitloop status)")
    evals = pd.concat(frames, ignore_index=True)
    evals["cycle"] = evals["cycle"].astype(float)
    return evals


def _results(run: RunFolder, eval_set: str | None) -> RunResults:
    return RunResults(
        folder=run.folder,
        config=run.config,
        manifest=run.manifest.data,
        evals=_read_evals(run, eval_set),
        training={cycle: run.training(cycle) for cycle in run.current_generations() if cycle is not None},
        eval_set=eval_set,
    )


def load_run(folder: Path | str, eval_set: str | None = None) -> RunResults:
    """Read a run folder written by ``traitloop run``: only results current for its config (see ``RunFolder``),
    on its main evaluation or, with ``eval_set``, on another suite, context or question file."""
    run = open_run_folder(folder)
    if eval_set is not None and eval_set not in run.eval_sets():
        known = ", ".join(run.eval_sets()) or "none"
        raise UserError(f"{run.folder} has no eval set {eval_set!r} (it has: {known})")
    return _results(run, eval_set)


def load_eval_sets(folder: Path | str) -> list[RunResults]:
    """A run's results on each of its other eval sets (suites, contexts, ``traitloop eval`` question files)
    that has at least one current generation, in the order ``RunFolder.eval_sets`` gives."""
    run = open_run_folder(folder)
    return [_results(run, name) for name in run.eval_sets() if run.current_generations(name)]


def replicate_key(run: RunResults) -> str:
    """Runs whose configs differ only in ``seed`` (and name) share this key: they are replicates."""
    fields = run.config.model_dump(mode="json", exclude={"seed", "name"})
    return json.dumps(fields, sort_keys=True)


def cycle_rows(run: RunResults, thresholds: Thresholds | None = None) -> list[dict[str, Any]]:
    """One row per generation (base first): the run's summary row (every measure's mean, CI, standard error and
    counts, the answer signals, what the generation was trained on; None where a run did not record it), and
    the thresholded rate (by the rule ``thresholds.rate``) that analysis is asked for."""
    thresholds = thresholds or Thresholds()
    resamples, seed = run.config.evaluation.bootstrap_resamples, run.config.seed
    rows = []
    for cycle in [None, *run.cycles]:
        answers = run.rows(cycle).to_dict("records")
        row = {"cycle": cycle, **generation_row(answers, run.training.get(cycle, {}), resamples, seed)}
        row |= {f"rate_{key}": value for key, value in run.thresholded_rate(cycle, thresholds).model_dump().items()}
        rows.append(row)
    return rows


def runs_table(
    runs: list[RunResults],
    thresholds: Thresholds | None = None,
    axes: Sequence[str] = (),
    extra: Sequence[dict[str, Any]] = (),
) -> pd.DataFrame:
    """One row per (run, eval set, generation) with the run's identifying settings, its value of each swept field
    in ``axes`` (lists as JSON), the rate rule and ``extra[i]``'s columns on run i's rows (its verdict); ``cycle``
    is <NA> for the base model, ``eval_set`` None for the run's main evaluation."""
    thresholds = thresholds or Thresholds()
    records = []
    for i, run in enumerate(runs):
        identity = {
            "run": run.name,
            "eval_set": run.eval_set,
            "folder": str(run.folder),
            "trait": run.config.trait,
            "method": run.config.method,
            "regime": run.config.regime,
            "seed": run.config.seed,
            "seed_examples": run.config.seed_examples,
            "samples_per_cycle": run.config.samples_per_cycle,
            "model": run.config.model,
            "git_hash": ", ".join(run.git_hashes) or None,
        }
        for axis, value in axis_values(run.config, axes).items():
            identity.setdefault(axis, value)
        identity |= {"rate_rule": thresholds.rate, **(extra[i] if i < len(extra) else {})}
        records += [identity | row for row in cycle_rows(run, thresholds)]
    table = pd.DataFrame.from_records(records)
    table["cycle"] = table["cycle"].astype("Int64")
    return table


def load_runs(folders: list[Path | str]) -> pd.DataFrame:
    """Per-(run, generation) statistics across many run folders, as one pandas DataFrame for your own analysis,
    with a column for each config field the runs vary."""
    runs = [load_run(folder) for folder in folders]
    return runs_table(runs, axes=swept_fields([run.config for run in runs]))
