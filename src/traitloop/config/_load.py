"""From YAML and ``--set`` overrides to a validated config, with errors that name the field and suggest a name."""

from __future__ import annotations

import difflib
import reprlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from traitloop.config._experiment import ExperimentConfig
from traitloop.errors import UserError
from traitloop.io import read_yaml


def _field_names(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _section_at(loc: tuple[Any, ...]) -> type[BaseModel]:
    """The pydantic class that owns the field at ``loc`` (so we can suggest sibling names)."""
    cls: type[BaseModel] = ExperimentConfig
    for part in loc[:-1]:
        field = cls.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            cls = annotation
    return cls


def config_error(source: str, problems: list[str]) -> UserError:
    """The error a config gets: its source, then one line per problem (each naming its field)."""
    return UserError("\n".join([f"invalid config ({source}):", *(f"  {problem}" for problem in problems)]))


def _explain(error: ValidationError, source: str) -> UserError:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        if item["type"] == "extra_forbidden":  # where may be '' itself: a key written as ""
            name = str(item["loc"][-1])
            close = difflib.get_close_matches(name, _field_names(_section_at(item["loc"])), n=1)
            hint = f" - did you mean '{'.'.join([*map(str, item['loc'][:-1]), close[0]])}'?" if close else ""
            lines.append(f"unknown field '{where}'{hint}")
        elif not item["loc"]:  # a check across fields: its message names them
            lines.append(item["msg"].removeprefix("Value error, "))
        else:
            message = item["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {message} (got {_SHORT.repr(item.get('input'))})")
    return config_error(source, lines)


_SHORT = reprlib.Repr()  # a bad value is quoted, never a megabyte of it
_SHORT.maxstring = _SHORT.maxother = 80


def parse_config(data: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a plain dict into an :class:`ExperimentConfig`, raising a :class:`UserError` that names fields."""
    if not isinstance(data, dict):
        raise UserError(f"invalid config ({source}): expected a mapping of fields, got {type(data).__name__}")
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as error:
        raise _explain(error, source) from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a raw config dict."""
    data = dict(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"bad --set '{item}': expected KEY=VALUE, e.g. --set cycles=4")
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:  # bytes the terminal could not decode arrive as lone surrogates
            raise UserError(f"bad --set {item!r}: not UTF-8 text") from None
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else {}
            node = node[part]
        node[parts[-1]] = value
    return data


def load_config(path: Path | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load a YAML config (or start empty), apply CLI overrides, and validate."""
    data = read_yaml(path) if path is not None else {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"invalid config ({path}): expected a mapping of fields at the top level")
    data = apply_overrides(data, overrides or [])
    config = parse_config(data, str(path) if path else "command line")
    if path is not None:
        config = resolve_paths(config, path.parent)
    return config


def resolve_paths(config: ExperimentConfig, base: Path) -> ExperimentConfig:
    """Make relative data paths in a config file relative to that file, as a reader expects."""
    updates: dict[str, Any] = {}
    for name in ("seed_file", "prompt_pool"):
        value = getattr(config, name)
        if isinstance(value, Path) and not value.is_absolute() and not _exists(value):
            updates[name] = base / value
    context_file = config.evaluation.context_file
    if context_file is not None and not context_file.is_absolute() and not _exists(context_file):
        updates["evaluation"] = config.evaluation.model_copy(update={"context_file": base / context_file})
    trait_path = Path(config.trait)
    if trait_path.suffix in {".yaml", ".yml"} and not trait_path.is_absolute() and not _exists(trait_path):
        updates["trait"] = str(base / trait_path)
    judges = {}
    for role in ("trait", "coherence"):
        template = getattr(config.judge, role).prompt_template
        if template is not None and not template.is_absolute() and not _exists(template):
            judges[role] = getattr(config.judge, role).model_copy(update={"prompt_template": base / template})
    if judges:
        updates["judge"] = config.judge.model_copy(update=judges)
    return config.model_copy(update=updates)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long for the file system is a path that does not exist
        return False


def default_run_folder(name: str | None) -> Path:
    """Where a run goes when no output folder is given: ``runs/<name>``."""
    return Path("runs") / (name or "run")


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The resolved config as plain YAML-safe data (paths as strings)."""
    return config.model_dump(mode="json")
