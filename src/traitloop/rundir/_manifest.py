"""The manifest (``manifest.json``): run-level facts and one record per stage, and the hashes that decide
whether a stage's record still holds.

Every file is written to a temporary name and renamed into place, so a run killed at any moment leaves
either the old file or the new one, never half of one. The manifest records, per stage, the inputs that
produced its outputs and the outputs' hashes. Outputs a ``--force`` supersedes are moved aside into
``superseded/``, never deleted and never read as results.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import shutil
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from traitloop._atomic import atomic_write_json, atomic_write_text
from traitloop.errors import UserError
from traitloop.rundir._layout import BASE, METRICS_FILE, SUPERSEDED, eval_set_of, stage_folder, stage_kind

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


@functools.cache  # read once per process, at first use: a process keeps running the code it imported
def git_hash() -> str | None:
    """The git commit of the traitloop source, with ``-dirty`` if it has changes; None outside a checkout."""
    source = Path(__file__).resolve().parents[1]  # the traitloop package
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
            "git_hash": git_hash(),
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


def recorded_git_hashes(manifest: dict[str, Any]) -> list[str]:
    """The commits whose code made a run's stages, in stage order, each once. A stage recorded before stages
    carried their commit counts as the run header's (the session that began the run). A run resumed by newer
    code lists both commits, so nobody reads a result as made by code that only reopened it."""
    header = manifest.get("environment", {}).get("git_hash")
    hashes = [record.get("git_hash", header) for record in manifest.get("stages", {}).values()] or [header]
    return list(dict.fromkeys(h for h in hashes if h))


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
