"""The run directory, the only state of a run: atomic writes, content hashes and the manifest.

Every file is written to a temporary name and renamed into place, so a run killed at any moment leaves
either the old file or the new one, never half of one. The manifest records, per stage, the inputs that
produced its outputs and the outputs' hashes; a stage counts as done only while both still match.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from traitloop._atomic import atomic_write_json, atomic_write_text
from traitloop.errors import UserError

MANIFEST_VERSION = 1
_PACKAGES = ("traitloop", "torch", "transformers", "peft", "trl", "sentence-transformers", "scikit-learn")


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


class Manifest:
    """``manifest.json``: run-level facts plus one record per stage (inputs, output hashes, status)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"manifest_version": MANIFEST_VERSION, "stages": {}}
        if path.is_file():
            try:
                self.data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as error:
                raise UserError(f"{path} is not valid JSON ({error.msg}); was it edited by hand?") from None

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
        return all(
            (folder / name).exists() and content_hash(folder / name) == digest
            for name, digest in record.get("outputs", {}).items()
        )


def save_config(path: Path, config: dict[str, Any]) -> None:
    atomic_write_text(path, yaml.safe_dump(config, sort_keys=False))
