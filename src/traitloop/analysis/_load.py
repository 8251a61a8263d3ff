"""Reading finished run folders back as data: the evaluations of every generation, and a table across runs.

Analysis works from ``eval.jsonl`` (every answer and its scores), not from the per-cycle aggregates, so that
statistics that pair cycles question by question (idempotence, attractor fit) can be computed at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from traitloop.analysis._stats import ScoreSummary, summarize_scores
from traitloop.config import ExperimentConfig
from traitloop.errors import UserError
from traitloop.loop import RunFolder, open_run_folder
from traitloop.loop._rundir import EVAL_SCHEMA_VERSION, check_version

SCORES = ("trait", "coherence")


@dataclass(frozen=True)
class RunResults:
    """One run folder: its config, manifest and every evaluated answer (base model rows have ``cycle`` NaN)."""

    folder: Path
    config: ExperimentConfig
    manifest: dict[str, Any]
    evals: pd.DataFrame

    @property
    def name(self) -> str:
        return self.config.name or self.folder.name

    @property
    def cycles(self) -> list[int]:
        """Generations that have been evaluated, in order (the base model excluded)."""
        return sorted(int(c) for c in self.evals["cycle"].dropna().unique())

    def summary(self, score: str, cycle: int | None) -> ScoreSummary:
        """Mean, bootstrap CI and standard error of one score for one generation (``None``: the base model)."""
        rows = self.evals[self.evals["cycle"].isna()] if cycle is None else self.evals[self.evals["cycle"] == cycle]
        return summarize_scores(
            rows["question_index"].tolist(),
            [None if pd.isna(v) else float(v) for v in rows[f"{score}_score"]],
            self.config.evaluation.bootstrap_resamples,
            self.config.seed,
        )

    def question_matrix(self, score: str) -> np.ndarray:
        """Questions × cycles of per-question mean scores (NaN where a question has no scored answer)."""
        rows = self.evals[self.evals["cycle"].notna()]
        table = rows.pivot_table(index="question_index", columns="cycle", values=f"{score}_score", aggfunc="mean")
        return table.reindex(columns=self.cycles).to_numpy(dtype=float)


def _read_evals(run: RunFolder) -> pd.DataFrame:
    """Every answer of the generations whose evaluation is current for the run's config, base model first."""
    generations = run.current_generations()
    frames = []
    for cycle in generations:
        frame = pd.read_json(run.eval_path(cycle), lines=True)
        versions = frame.get("schema_version", pd.Series(dtype=float)).dropna()
        check_version(int(versions.max()) if len(versions) else None, EVAL_SCHEMA_VERSION, str(run.eval_path(cycle)))
        frames.append(frame)
    if not frames:
        raise UserError(f"{run.folder} has no current evaluated generation yet; run it first (traitloop status)")
    evals = pd.concat(frames, ignore_index=True)
    evals["cycle"] = evals["cycle"].astype(float)
    return evals


def load_run(folder: Path | str) -> RunResults:
    """Read a run folder written by ``traitloop run``: only results current for its config (see ``RunFolder``)."""
    run = open_run_folder(folder)
    return RunResults(folder=run.folder, config=run.config, manifest=run.manifest.data, evals=_read_evals(run))


def setting_of(run: RunResults) -> str:
    """The label runs are grouped and coloured by in comparisons: trait, method and regime."""
    return f"{run.config.trait} {run.config.method}-{run.config.regime}"


def replicate_key(run: RunResults) -> str:
    """Runs whose configs differ only in ``seed`` (and name) share this key: they are replicates."""
    fields = run.config.model_dump(mode="json", exclude={"seed", "name"})
    return json.dumps(fields, sort_keys=True)


def cycle_rows(run: RunResults) -> list[dict[str, Any]]:
    """One row per generation (base first) with each score's mean, CI and standard error."""
    rows = []
    for cycle in [None, *run.cycles]:
        row: dict[str, Any] = {"cycle": cycle}
        for score in SCORES:
            stats = run.summary(score, cycle)
            row |= {f"{score}_{key}": value for key, value in stats.model_dump().items() if key != "n_scored"}
            row[f"{score}_n_scored"] = stats.n_scored
        rows.append(row)
    return rows


def runs_table(runs: list[RunResults]) -> pd.DataFrame:
    """One row per (run, generation) with the run's identifying settings; ``cycle`` is <NA> for the base model."""
    records = []
    for run in runs:
        identity = {
            "run": run.name,
            "folder": str(run.folder),
            "trait": run.config.trait,
            "method": run.config.method,
            "regime": run.config.regime,
            "seed": run.config.seed,
            "seed_examples": run.config.seed_examples,
            "samples_per_cycle": run.config.samples_per_cycle,
            "model": run.config.model,
            "git_hash": run.manifest.get("environment", {}).get("git_hash"),
        }
        records += [identity | row for row in cycle_rows(run)]
    table = pd.DataFrame.from_records(records)
    table["cycle"] = table["cycle"].astype("Int64")
    return table


def load_runs(folders: list[Path | str]) -> pd.DataFrame:
    """Per-(run, generation) statistics across many run folders, as one pandas DataFrame for your own analysis."""
    return runs_table([load_run(folder) for folder in folders])
