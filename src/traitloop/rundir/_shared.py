"""Stages that several run folders share: a sweep's base-model evaluation, made once and taken by every run
whose base evaluation has the same recorded inputs (model, eval questions, judges, evaluation settings, seed).

The store is a folder (a sweep's ``shared/``) of entries, each named by the hash of a stage's name and recorded
inputs, holding the stage's outputs and its manifest record; an entry is published in one rename once complete,
so a half-made one is never seen. A run looks for the entry, and makes it when there is none, while holding the
entry's lock (``flock`` on ``<key>.lock``): runs starting at once make it once, the first makes it and the others
wait, then take it. The kernel drops the lock of a killed holder, and the next run makes the entry afresh.

A run takes an entry as its own: the outputs are linked (or copied) into its folder and the record copied into
its manifest as it is, so the run folder stands alone, and the stage is current there exactly as if the run had
made it (the same inputs, the same output hashes).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from traitloop._atomic import atomic_folder, atomic_write_json
from traitloop.rundir._manifest import outputs_intact, value_hash

SHARED = "shared"  # the store's folder in a sweep folder (or a calibration's)
RECORD_FILE = "record.json"


class SharedEntry:
    """One stage's entry in the store, looked at (and published) while its lock is held."""

    def __init__(self, path: Path, stage: str, inputs: dict[str, Any]) -> None:
        self.path, self.stage, self.inputs = path, stage, inputs

    def record(self) -> dict[str, Any] | None:
        """The published stage record, if there is one for these very inputs with its outputs intact."""
        try:
            saved = json.loads((self.path / RECORD_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        record = saved.get("record", {})
        if saved.get("stage") != self.stage or record.get("inputs_hash") != value_hash(self.inputs):
            return None
        return record if outputs_intact(self.path, record) else None

    def take(self, folder: Path, record: dict[str, Any]) -> None:
        """Put the entry's outputs into a run's stage ``folder``: hard links where the file system allows (one
        copy on disk), else copies; each replaces what was there in one rename."""
        folder.mkdir(parents=True, exist_ok=True)
        for name in record.get("outputs", {}):
            _place(self.path / name, folder / name)

    def publish(self, folder: Path, record: dict[str, Any]) -> None:
        """Publish the outputs a run just made in its stage ``folder``, with their record."""

        def current(existing: Path) -> bool:
            return SharedEntry(existing, self.stage, self.inputs).record() is not None

        with atomic_folder(self.path, current) as staging:
            for name in record.get("outputs", {}):
                _place(folder / name, staging / name)
            atomic_write_json(staging / RECORD_FILE, {"stage": self.stage, "record": record})


def _place(source: Path, target: Path) -> None:
    """``source`` (a file or a folder) at ``target``: built beside it under a temporary name, then renamed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".shared")) / "x"
    try:
        if source.is_dir():
            shutil.copytree(source, temporary, copy_function=_link_or_copy)
        else:
            _link_or_copy(source, temporary)
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(temporary, target)
    finally:
        shutil.rmtree(temporary.parent, ignore_errors=True)


def _link_or_copy(source: Path | str, target: Path | str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(source, target)


class SharedStages:
    """The store of shared stages in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @contextlib.contextmanager
    def claim(self, stage: str, inputs: dict[str, Any]) -> Iterator[SharedEntry]:
        """Hold the lock of the entry for ``stage`` with ``inputs`` (waiting for a run that holds it), and give
        the entry to look at, take or publish."""
        key = value_hash({"stage": stage, "inputs": inputs})
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = os.open(self.folder / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield SharedEntry(self.folder / key, stage, inputs)
        finally:
            os.close(handle)  # closing releases the flock
