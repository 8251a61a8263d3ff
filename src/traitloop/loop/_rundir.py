"""The run directory, the only state of a run: its layout, the manifest, and which results are current.

This module is the one authority on the layout (folder and file names, stage names), on reading the
manifest, and on which stages are finished *for the current config*: the loop writes through it, and the
API, sweeps, calibration and analysis read runs through :func:`open_run_folder`, never by globbing folders.

Every file is written to a temporary name and renamed into place, so a run killed at any moment leaves
either the old file or the new one, never half of one. The manifest records, per stage, the inputs that
produced its outputs and the outputs' hashes; a stage counts as finished only while both still match and
the outputs it was made from (its upstream) are the ones the manifest holds now. Outputs a ``--force``
supersedes are moved aside into ``superseded/``, never deleted and never read as results.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from traitloop._atomic import atomic_write_json, atomic_write_text
from traitloop.config import ExperimentConfig, load_config
from traitloop.errors import UserError

MANIFEST_VERSION = 1
_PACKAGES = ("traitloop", "torch", "transformers", "peft", "trl", "sentence-transformers", "scikit-learn")

BASE = "base"
CONFIG_FILE = "config.yaml"
MANIFEST_FILE = "manifest.json"
SUMMARY_FILE = "summary.csv"
LOCK_FILE = ".traitloop.lock"
SUPERSEDED = "superseded"
EVALS = "evals"  # evals/<set>/<generation>/: a generation evaluated on another suite, context or question file
TRAIN_DATA = "train.jsonl"
SAMPLES_FILE = "samples.jsonl"  # every self-generated sample and its scores, when a cycle's answers are filtered
WEIGHTS = "adapter"
EVAL_FILE = "eval.jsonl"
METRICS_FILE = "metrics.json"
DATA, TRAIN, EVAL = STAGE_KINDS = ("data", "train", "eval")
# Which recorded upstream hash names which stage's output: (upstream key) -> (cycle offset, stage kind, output).
_UPSTREAM_SOURCES = {
    "data": {"weights": (-1, "train", WEIGHTS), "rejected_weights": (-2, "train", WEIGHTS)},
    "train": {"data": (0, "data", TRAIN_DATA), "weights": (-1, "train", WEIGHTS), "teacher": (-1, "train", WEIGHTS)},
    "eval": {"weights": (0, "train", WEIGHTS)},
}


def cycle_dir_name(cycle: int) -> str:
    return f"cycle_{cycle:03d}"


def generation_label(cycle: int | None) -> str:
    """The folder of a generation: ``base`` for the base model (``None``), ``cycle_NNN`` otherwise."""
    return BASE if cycle is None else cycle_dir_name(cycle)


def stage_folder(stage: str) -> str:
    """The folder a stage writes in, relative to the run: ``cycle_003`` for ``cycle_003/train``,
    ``evals/broad/cycle_003`` for ``evals/broad/cycle_003/eval``."""
    return stage.rsplit("/", 1)[0]


def stage_kind(stage: str) -> str:
    """``data``, ``train`` or ``eval``."""
    return stage.rsplit("/", 1)[1]


def stage_cycle(stage: str) -> int | None:
    """The cycle a stage name such as ``cycle_003/train`` belongs to; None for the base model's stages."""
    label = stage_folder(stage).rsplit("/", 1)[-1]
    return None if label == BASE else int(label.removeprefix("cycle_"))


def eval_set_stage(name: str, cycle: int | None) -> str:
    """The stage evaluating generation ``cycle`` (None: the base model) on the eval set ``name``."""
    return f"{EVALS}/{name}/{generation_label(cycle)}/eval"


def eval_set_of(stage: str) -> str | None:
    """The eval set a stage evaluates on (None: the run's main evaluation, or not an evaluation)."""
    parts = stage.split("/")
    return parts[1] if parts[0] == EVALS else None


def stage_seed(seed: int, stage: str) -> int:
    """A per-stage seed: fixed by the run's seed and the stage's name, independent of run order."""
    return zlib.crc32(f"{seed}:{stage}".encode())


def weights_id(record: dict[str, Any]) -> str:
    """What identifies the weights a train stage made: their content hash, or ``base`` for a stage that trained
    nothing (a control chain's generation 0 is the base model itself)."""
    return record.get("outputs", {}).get(WEIGHTS, BASE)


def planned_stages(cycles: int, eval_sets: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Every stage of a run with ``cycles`` cycles, in the order the loop runs them: each generation's main
    evaluation is followed by its evaluations on the config's ``eval_sets``."""
    stages = [f"{BASE}/eval", *(eval_set_stage(name, None) for name in eval_sets)]
    for cycle in range(cycles + 1):
        stages += [f"{cycle_dir_name(cycle)}/{kind}" for kind in STAGE_KINDS]
        stages += [eval_set_stage(name, cycle) for name in eval_sets]
    return stages


def content_hash(path: Path) -> str:
    """sha256 of a file, or of every file under a folder (names and bytes, in sorted order)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def value_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def git_hash() -> str | None:
    """The git commit of the traitloop source, with ``-dirty`` if it has changes; None outside a checkout."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--", "."], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def environment() -> dict[str, Any]:
    """Versions of everything a result depends on."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git_hash": git_hash(),
    }


def check_version(found: Any, known: int, what: str) -> None:
    """Refuse a record written by a newer traitloop: its fields may mean what this version cannot know."""
    if isinstance(found, int) and found > known:
        raise UserError(
            f"{what} has version {found}, but this traitloop reads up to version {known}; "
            "it was written by a newer traitloop: upgrade traitloop to read it"
        )


EVAL_SCHEMA_VERSION = 2  # 2: projection, prompt_projection; eval_set, suite, context


class EvalRecord(BaseModel):
    """One row of ``eval.jsonl``: one sampled answer to one eval question, with every score it got."""

    schema_version: int = EVAL_SCHEMA_VERSION
    cycle: int | None  # None for the base model
    question_index: int
    sample: int
    question: str
    answer: str
    trait_score: float | None
    trait_reason: str | None = None
    trait_judge: str
    coherence_score: float | None
    coherence_reason: str | None = None
    coherence_judge: str
    length_words: int
    distinct_2: float
    base_nll: float | None
    perplexity: float | None
    projection: float | None = None  # on the trait's persona direction, over the answer, in the generation's weights
    prompt_projection: float | None = None  # the same at the question's last prompt token, before answering
    eval_set: str | None = None  # None: the generation's main evaluation
    suite: str | None = None
    context: str | None = None


class Manifest:
    """``manifest.json``: run-level facts plus one record per stage (inputs, output hashes, status)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"manifest_version": MANIFEST_VERSION, "stages": {}}
        if path.is_file():
            try:
                self.data = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise UserError(f"{path} is not valid JSON ({error}); was it edited by hand?") from None
            if not isinstance(self.data, dict) or not isinstance(self.data.get("stages", {}), dict):
                raise UserError(f"{path} is not a traitloop manifest (expected an object with 'stages')")
            check_version(self.data.get("manifest_version"), MANIFEST_VERSION, str(path))

    @property
    def stages(self) -> dict[str, dict[str, Any]]:
        return self.data.setdefault("stages", {})

    def save(self) -> None:
        atomic_write_json(self.path, self.data)

    def record(self, stage: str, inputs: dict[str, Any], outputs: dict[str, str], **facts: Any) -> None:
        self.stages[stage] = {
            "status": "done",
            "inputs": inputs,
            "inputs_hash": value_hash(inputs),
            "outputs": outputs,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            **facts,
        }
        self.save()

    def forget(self, stage: str) -> None:
        if self.stages.pop(stage, None) is not None:
            self.save()

    def is_done(self, stage: str, inputs: dict[str, Any], folder: Path) -> bool:
        """Done means: recorded as done with the same inputs, and every output still has its recorded hash."""
        record = self.stages.get(stage)
        if not record or record.get("status") != "done" or record.get("inputs_hash") != value_hash(inputs):
            return False
        return outputs_intact(folder, record)


def outputs_intact(folder: Path, record: dict[str, Any]) -> bool:
    """Every output of a stage record still exists under ``folder`` with the hash it was recorded with."""
    return all(
        (folder / name).exists() and content_hash(folder / name) == digest
        for name, digest in record.get("outputs", {}).items()
    )


def save_config(path: Path, config: dict[str, Any]) -> None:
    atomic_write_text(path, yaml.safe_dump(config, sort_keys=False))


def supersede(folder: Path, stages: list[str], manifest: Manifest, reason: str) -> Path | None:
    """Move the outputs of recorded ``stages`` into ``superseded/<time>/`` (kept, never read as results).

    A generation whose first stage is superseded goes there whole (its logs too); otherwise only the
    superseded stages' recorded outputs move, so a cycle's still-valid data stays in place.
    """
    recorded = [stage for stage in stages if stage in manifest.stages]
    if not recorded:
        return None
    target = folder / SUPERSEDED / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    for stage in recorded:
        label, kind = stage_folder(stage), stage_kind(stage)
        whole = kind == "data" or label == BASE or eval_set_of(stage) is not None
        names = [label] if whole else [f"{label}/{name}" for name in manifest.stages[stage].get("outputs", {})]
        if kind == "eval" and not whole:
            names.append(f"{label}/{METRICS_FILE}")
        for name in names:
            if (folder / name).exists():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(folder / name), str(target / name))
    target.mkdir(parents=True, exist_ok=True)
    records = {stage: manifest.stages[stage] for stage in recorded}
    atomic_write_json(target / "superseded.json", {"reason": reason, "stages": records})
    return target


@dataclass
class RunFolder:
    """A run folder read back: its config, its manifest, and which of its stages are current.

    A stage is current when the manifest records it as done, its outputs still have their recorded hashes,
    it belongs to the config's cycles, and every output it was made from is the one its upstream stage
    holds now. Results (status, sweeps, analysis) come only from current stages, so outputs a killed
    ``--force`` left behind, or cycles beyond a lowered ``cycles``, are never mixed into them.
    """

    folder: Path
    config: ExperimentConfig
    manifest: Manifest

    _current: dict[str, bool] = field(default_factory=dict, init=False, repr=False)

    def stage_current(self, stage: str) -> bool:
        if stage not in self._current:
            self._current[stage] = self._check_stage(stage)
        return self._current[stage]

    def _check_stage(self, stage: str) -> bool:
        record = self.manifest.stages.get(stage)
        cycle = stage_cycle(stage)
        if not record or record.get("status") != "done" or (cycle is not None and cycle > self.config.cycles):
            return False
        if not outputs_intact(self.folder / stage_folder(stage), record):
            return False
        upstream = record.get("inputs", {}).get("upstream", {})
        for key, (offset, kind, output) in _UPSTREAM_SOURCES.get(stage_kind(stage), {}).items():
            if key not in upstream:
                continue
            source = f"{cycle_dir_name((cycle or 0) + offset)}/{kind}"
            if not self.stage_current(source) or _output_id(self.manifest.stages[source], output) != upstream[key]:
                return False
        return True

    def _eval_stage(self, cycle: int | None, eval_set: str | None) -> str:
        return f"{generation_label(cycle)}/eval" if eval_set is None else eval_set_stage(eval_set, cycle)

    def generation_current(self, cycle: int | None, eval_set: str | None = None) -> bool:
        """Whether generation ``cycle`` (None: the base model) has a current evaluation (on ``eval_set``; None:
        the main one)."""
        return self.stage_current(self._eval_stage(cycle, eval_set))

    def current_generations(self, eval_set: str | None = None) -> list[int | None]:
        """The generations with a current evaluation (on ``eval_set``), base model first."""
        return [c for c in [None, *range(self.config.cycles + 1)] if self.generation_current(c, eval_set)]

    def eval_sets(self) -> list[str]:
        """The eval sets of this run: the config's, then any others evaluated later (``traitloop eval``)."""
        configured = [name for name, _, _ in self.config.evaluation.eval_sets()]
        recorded = sorted({name for name in map(eval_set_of, self.manifest.stages) if name is not None})
        return configured + [name for name in recorded if name not in configured]

    def eval_path(self, cycle: int | None, eval_set: str | None = None) -> Path:
        return self.folder / stage_folder(self._eval_stage(cycle, eval_set)) / EVAL_FILE

    def metrics(self, cycle: int | None, eval_set: str | None = None) -> dict[str, Any] | None:
        """A generation's ``metrics.json`` (on ``eval_set``), or None when that evaluation is not current."""
        if not self.generation_current(cycle, eval_set):
            return None
        path = self.folder / stage_folder(self._eval_stage(cycle, eval_set)) / METRICS_FILE
        return json.loads(path.read_text(encoding="utf-8"))

    def ignored_generations(self) -> list[str]:
        """Generation folders holding an evaluation that is not current (superseded or beyond ``cycles``)."""
        labels = [BASE, *sorted(p.name for p in self.folder.glob("cycle_*") if p.is_dir())]
        current = {generation_label(c) for c in self.current_generations()}
        return [label for label in labels if (self.folder / label / EVAL_FILE).is_file() and label not in current]

    def is_complete(self) -> bool:
        """Every stage of the config is current and the summary table is written."""
        configured = [name for name, _, _ in self.config.evaluation.eval_sets()]
        stages_current = all(self.stage_current(s) for s in planned_stages(self.config.cycles, configured))
        return stages_current and (self.folder / SUMMARY_FILE).is_file()


def _output_id(record: dict[str, Any], output: str) -> str | None:
    return weights_id(record) if output == WEIGHTS else record["outputs"].get(output)


def is_run_folder(folder: Path) -> bool:
    return (folder / MANIFEST_FILE).is_file() and (folder / CONFIG_FILE).is_file()


def open_run_folder(folder: Path | str) -> RunFolder:
    """Read a run folder written by ``traitloop run``; a clear error if it is not one."""
    folder = Path(folder)
    if not is_run_folder(folder):
        raise UserError(f"{folder} is not a traitloop run folder (needs {CONFIG_FILE} and {MANIFEST_FILE})")
    return RunFolder(folder, load_config(folder / CONFIG_FILE), Manifest(folder / MANIFEST_FILE))
