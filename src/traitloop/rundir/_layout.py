"""The run folder's layout: every folder, file and stage name, in one place.

A stage is named by the folder it writes in and its kind (``cycle_003/train``, ``evals/broad/base/eval``);
every package that reads or writes a run folder builds those names here, never by hand.
"""

from __future__ import annotations

import zlib
from typing import Any

from traitloop.errors import UserError

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
UPSTREAM_SOURCES = {
    "data": {"weights": (-1, "train", WEIGHTS), "rejected_weights": (-2, "train", WEIGHTS)},
    "train": {"data": (0, "data", TRAIN_DATA), "weights": (-1, "train", WEIGHTS), "teacher": (-1, "train", WEIGHTS)},
    "eval": {"weights": (0, "train", WEIGHTS)},
}


def generations(cycles: int) -> list[int | None]:
    """Every generation of a run with ``cycles`` cycles, in order: the base model (None), then 0 to ``cycles``."""
    return [None, *range(cycles + 1)]


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
    stages = []
    for cycle in generations(cycles):
        if cycle is not None:
            stages += [f"{cycle_dir_name(cycle)}/{kind}" for kind in (DATA, TRAIN)]
        stages += [f"{generation_label(cycle)}/{EVAL}", *(eval_set_stage(name, cycle) for name in eval_sets)]
    return stages
