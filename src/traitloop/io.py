"""File readers every package shares: UTF-8 text and YAML, with errors that name the file and the line.

They stand on the lowest floor so that the config, the trait specs and the judges' prompt files read files
the same way without importing each other.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from traitloop.errors import UserError


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; a config that says ``trait:`` twice is a mistake to report."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool | None):
                continue  # an unhashable key: SafeLoader reports it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (the first one would be ignored)", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_text(path: Path) -> str:
    """A UTF-8 text file's contents, or a :class:`UserError` naming the file (and the line of a bad byte)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except (OSError, ValueError) as error:  # a folder, no permission, a name too long or with a NUL byte
        raise UserError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = len(re.split(r"\r\n|\r|\n", data[: error.start].decode("utf-8-sig")))
        byte = data[error.start]
        raise UserError(f"{path}:{line}: not UTF-8 text (byte 0x{byte:02x}); save it as UTF-8") from None


def read_yaml(path: Path) -> Any:
    """Read a YAML file, turning syntax errors into a message with the file and line."""
    text = read_text(path)
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise UserError(f"bad YAML in {where}: {getattr(error, 'problem', error)}") from None
    except RecursionError:
        raise UserError(f"bad YAML in {path}: nested too deeply") from None
