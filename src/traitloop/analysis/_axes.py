"""What a set of runs varies: the config fields that differ between them (a sweep's axes), and the labels that
name a run, or a cell of a grid, by those fields (``seed_examples=64, samples_per_cycle=16``).

``name`` never counts, and ``seed`` is not an axis: runs that differ only in their seed are replicates of one
setting. Fields are dotted (``training.learning_rate``), in the order the config defines them unless an order
is given (a sweep's grid order).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

from traitloop.config import ExperimentConfig
from traitloop.errors import UserError

NOT_AXES = ("name", "seed")


def flat_fields(config: ExperimentConfig) -> dict[str, Any]:
    """Every config field by its dotted name, with its value as JSON would hold it."""

    def walk(values: dict[str, Any], prefix: str) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for key, value in values.items():
            if isinstance(value, dict) and value:
                flat |= walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value
        return flat

    return walk(config.model_dump(mode="json"), "")


def swept_fields(configs: Sequence[ExperimentConfig], order: Sequence[str] = ()) -> list[str]:
    """The fields whose values differ between ``configs`` (neither ``name`` nor ``seed``): those named in
    ``order`` first, in that order, then the rest in the config's own order."""
    flats = [flat_fields(config) for config in configs]
    names = list(dict.fromkeys(name for flat in flats for name in flat))
    differing = [
        name for name in names
        if name not in NOT_AXES and len({json.dumps(flat.get(name), sort_keys=True) for flat in flats}) > 1
    ]  # fmt: skip
    return [*(name for name in order if name in differing), *(name for name in differing if name not in order)]


def choose_grid_axes(axes: list[str], chosen: Sequence[str] | None) -> list[str]:
    """The (at most two) axes a grid is drawn over: ``chosen``, checked against ``axes``, else the first two."""
    if not chosen:
        return axes[:2]
    unknown = [name for name in chosen if name not in axes]
    if unknown:
        varied = ", ".join(axes) or "none: the runs differ only in their seed"
        raise UserError(f"--axes names {', '.join(unknown)}, which the runs do not vary (they vary: {varied})")
    if len(chosen) > 2 or len(set(chosen)) != len(chosen):
        raise UserError(f"--axes takes one or two different fields, got {', '.join(chosen)}")
    return list(chosen)


def value_text(value: Any) -> str:
    """A field's value as a label shows it: numbers as written, a path by its file name, the rest as JSON."""
    if isinstance(value, str):
        return PurePath(value).name if "/" in value and not value.startswith(("[", "{")) else value
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value, separators=(",", ":")) if isinstance(value, list | dict) else str(value)


def axis_values(config: ExperimentConfig, axes: Sequence[str]) -> dict[str, Any]:
    """A run's value of each of ``axes``; a list or mapping as its JSON text, so that values can key a grid."""
    flat = flat_fields(config)
    return {name: _hashable(flat.get(name)) for name in axes}


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, separators=(",", ":")) if isinstance(value, list | dict) else value


def label_of(values: dict[str, Any]) -> str:
    """``seed_examples=64, samples_per_cycle=16``."""
    return ", ".join(f"{name}={value_text(value)}" for name, value in values.items())


def setting_of(config: ExperimentConfig, axes: Sequence[str] = ()) -> str:
    """The label runs are grouped, coloured and named by: the fields they vary, or, where they vary none but
    their seed (or stand alone), trait, method and regime."""
    if axes:
        return label_of(axis_values(config, axes))
    return f"{config.trait} {config.method}-{config.regime}"
