"""The sweep file: a base experiment config, a grid over any of its fields, and how to execute the runs.

A sweep expands into named runs before anything runs, and every expanded config is validated like a config
file, so a typo in a grid field or a bad value is reported by field name before the first run starts. Run
names are the grid values (``seed=1,seed_examples=32``): the same sweep file always gives the same folders,
which is what lets a re-run skip the finished runs and resume the rest.
"""

from __future__ import annotations

import difflib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from traitloop.config import ExperimentConfig, apply_overrides, parse_config, resolve_paths
from traitloop.errors import UserError
from traitloop.io import read_yaml
from traitloop.loop import check_config


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RayOptions(_Strict):
    """Where the Ray executor runs and what each run asks the scheduler for."""

    address: str | None = Field(
        None, description="An existing cluster ('auto', 'HOST:6379' or 'ray://HOST:10001'); none starts a local Ray."
    )
    num_cpus: int | None = Field(None, ge=1, description="CPUs of the local Ray traitloop starts (default: all).")
    num_cpus_per_run: float = Field(1.0, gt=0, description="CPUs each run reserves; also its torch thread count.")
    num_gpus_per_run: Annotated[float, Field(ge=0)] | Literal["auto"] = Field(
        "auto",
        description="GPUs each run reserves (1 = one run per GPU; 0.5 = two runs share one). auto: one GPU per "
        "run where the cluster has GPUs, none where it has not.",
    )

    def gpus_per_run(self, cluster_gpus: float) -> float:
        """What each run reserves on a cluster with ``cluster_gpus`` GPUs."""
        if self.num_gpus_per_run == "auto":
            return 1.0 if cluster_gpus > 0 else 0.0
        return float(self.num_gpus_per_run)


class ExecutorOptions(_Strict):
    ray: RayOptions = Field(default_factory=RayOptions)


class SweepConfig(_Strict):
    """A sweep file (or the ``sweep:`` block of an experiment config)."""

    name: str | None = Field(None, description="Sweep name; defaults to the sweep file's name.")
    base: dict[str, Any] | Path = Field(..., description="The base experiment: a config file path or its fields.")
    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="Dotted config field -> values; every combination is one run."
    )
    include: list[dict[str, Any]] = Field(
        default_factory=list, description="Extra runs, each a mapping of dotted fields -> one value."
    )
    executor: ExecutorOptions = Field(default_factory=ExecutorOptions)


@dataclass(frozen=True)
class PlannedRun:
    """One expanded run: its folder name, the grid values that define it and its validated config."""

    name: str
    values: dict[str, Any]
    config: ExperimentConfig


@dataclass(frozen=True)
class Sweep:
    """A loaded sweep: its spec, its folder and its expanded runs."""

    spec: SweepConfig
    folder: Path
    runs: list[PlannedRun]
    source_dir: Path

    @property
    def name(self) -> str:
        return self.folder.name

    def saved(self) -> dict[str, Any]:
        return saved_spec(self.spec, self.source_dir, self.name)

    @property
    def runs_folder(self) -> Path:
        return self.folder / "runs"

    def run_folder(self, run: PlannedRun) -> Path:
        return self.runs_folder / run.name


_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")


def _value_label(value: Any) -> str:
    """A value as it appears in a run name: short, and safe in a folder name (paths become their stem)."""
    if isinstance(value, str) and ("/" in value or value.endswith((".yaml", ".yml", ".jsonl"))):
        value = Path(value).stem
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return _UNSAFE.sub("_", text).strip("_") or "_"


def run_name(values: dict[str, Any]) -> str:
    """``seed=1,seed_examples=32``: the grid values in the sweep file's order."""
    return ",".join(f"{key}={_value_label(value)}" for key, value in values.items()) or "base"


def _combinations(spec: SweepConfig) -> list[dict[str, Any]]:
    keys = list(spec.grid)
    grid = [dict(zip(keys, values, strict=True)) for values in itertools.product(*spec.grid.values())]
    return [*grid, *spec.include] if grid != [{}] or not spec.include else list(spec.include)


def _expand_one(base: dict[str, Any], base_dir: Path, values: dict[str, Any], source: str) -> ExperimentConfig:
    """The base config with ``values`` set, validated (errors name the field and the run)."""
    overrides = [f"{key}={json.dumps(value)}" for key, value in values.items()]
    data = apply_overrides(base, overrides)
    data["name"] = run_name(values)
    return check_config(resolve_paths(parse_config(data, source), base_dir), source)


def expand(spec: SweepConfig, base_dir: Path, source: str) -> list[PlannedRun]:
    """Every run of the sweep, validated; two runs with the same name (repeated grid values) are an error."""
    base, base_dir = _base_config(spec, base_dir)
    for key, values in spec.grid.items():
        if not values:
            raise UserError(f"invalid sweep ({source}): grid field '{key}' has no values")
    runs: list[PlannedRun] = []
    for values in _combinations(spec):
        name = run_name(values)
        config = _expand_one(base, base_dir, values, f"{source}, run '{name}'")
        if any(run.name == name for run in runs):
            raise UserError(f"invalid sweep ({source}): two runs are both named '{name}'; remove the repeated value")
        runs.append(PlannedRun(name, values, config))
    return runs


def _base_config(spec: SweepConfig, base_dir: Path) -> tuple[dict[str, Any], Path]:
    """The base config's fields and the folder its relative paths are relative to."""
    if isinstance(spec.base, dict):
        return dict(spec.base), base_dir
    path = spec.base if spec.base.is_absolute() else base_dir / spec.base
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise UserError(f"invalid config ({path}): expected a mapping of fields at the top level")
    return data, path.parent


def _explain(error: ValidationError, source: str) -> str:
    lines = [f"invalid sweep ({source}):"]
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            names = [*SweepConfig.model_fields, *ExecutorOptions.model_fields, *RayOptions.model_fields]
            close = difflib.get_close_matches(str(item["loc"][-1]), names, n=1)
            lines.append(f"  unknown field '{where}'" + (f" - did you mean '{close[0]}'?" if close else ""))
        else:
            lines.append(f"  {where}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def parse_sweep(data: Any, source: str) -> SweepConfig:
    """A sweep file's contents, or an experiment config with a ``sweep:`` block (the rest is the base)."""
    if not isinstance(data, dict):
        raise UserError(f"invalid sweep ({source}): expected a mapping with 'base' and 'grid'")
    if "sweep" in data:
        block = data["sweep"]
        if not isinstance(block, dict):
            raise UserError(f"invalid sweep ({source}): 'sweep' must be a mapping with 'grid'")
        data = {**block, "base": {k: v for k, v in data.items() if k != "sweep"}}
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as error:
        raise UserError(_explain(error, source)) from None


SWEEP_FILE = "sweep.yaml"


def load_sweep(path: Path, output: Path | None = None) -> Sweep:
    """A sweep from its YAML file, or from a sweep folder (its saved ``sweep.yaml``), expanded and validated.

    The folder is ``output``, else the folder given, else ``sweeps/<name>``.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / SWEEP_FILE).is_file():
            raise UserError(f"{path} is not a sweep folder (no {SWEEP_FILE})")
        output = output or path
        path = path / SWEEP_FILE
    spec = parse_sweep(read_yaml(path), str(path))
    folder = Path(output) if output else Path("sweeps") / (spec.name or path.stem)
    # Absolute paths in every run's config: a Ray worker on another node does not share this process's cwd.
    source_dir = path.resolve().parent
    return Sweep(spec=spec, folder=folder, runs=expand(spec, source_dir, str(path)), source_dir=source_dir)


_PATH_FIELDS = ("seed_file", "prompt_pool", "trait")


def _absolute(key: str, value: Any, base_dir: Path) -> Any:
    """A relative path field made absolute the way a config file's are (see ``config.resolve_paths``)."""
    if key not in _PATH_FIELDS or not isinstance(value, str) or Path(value).is_absolute() or Path(value).exists():
        return value
    if key == "trait" and Path(value).suffix not in {".yaml", ".yml"}:
        return value
    return str((base_dir / value).resolve())


def saved_spec(spec: SweepConfig, base_dir: Path, name: str) -> dict[str, Any]:
    """The sweep as saved in its folder: the base inlined and paths absolute, so the folder stands alone."""
    base, base_dir = _base_config(spec, base_dir)
    return {
        **spec.model_dump(mode="json"),
        "name": name,
        "base": {key: _absolute(key, value, base_dir) for key, value in base.items()},
        "grid": {key: [_absolute(key, v, base_dir) for v in values] for key, values in spec.grid.items()},
        "include": [{key: _absolute(key, v, base_dir) for key, v in extra.items()} for extra in spec.include],
    }
