"""Atomic writes: a uniquely named temporary in the same folder, fsynced, then renamed into place.

A process killed at any moment leaves either the old file or the new one, never half of one; every file
traitloop writes (run directories, reports, tables, caches) goes through here. Temporaries are named by
``tempfile`` (unique per process and thread), so several processes filling the same cache at once (a sweep's
runs starting cold) never write into, or delete, each other's. A folder (a converted model) is published the
same way: built in a staging folder of its own, then renamed in one step.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# tempfile makes its files 0600 and folders 0700; what is published gets the modes open() and mkdir() would give.
_UMASK = _umask()


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A binary file to write; it replaces ``path`` when the block ends, and is removed if the block raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
            out.flush()
            os.fchmod(out.fileno(), 0o666 & ~_UMASK)
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_file(path) as out:
        out.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


@contextlib.contextmanager
def atomic_folder(target: Path, is_current: Callable[[Path], bool] = lambda _: True) -> Iterator[Path]:
    """A fresh staging folder of this process's own, next to ``target``, that becomes ``target`` in one rename
    when the block ends (and is removed if the block raises).

    If another process published ``target`` first and ``is_current(target)`` says it is good, that one is kept
    and this one dropped (built from the same inputs, it holds the same). A ``target`` that is not current (an
    older conversion) is moved aside and removed.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial"))
    os.chmod(staging, 0o777 & ~_UMASK)
    try:
        yield staging
        _publish_folder(staging, target, is_current)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` among processes (``flock`` on the folder itself: no lock file is left
    behind, and the kernel releases it when its process dies)."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def _publish_folder(staging: Path, target: Path, is_current: Callable[[Path], bool]) -> None:
    """Rename ``staging`` to ``target`` under a lock on their folder, so no process can move aside a ``target``
    another has just published after finding the one before it stale."""
    with folder_lock(target.parent):
        if target.exists():
            if is_current(target):  # another process published it first: built from the same inputs, the same
                shutil.rmtree(staging)
                return
            aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
            os.rename(target, aside / target.name)
            shutil.rmtree(aside)
        os.rename(staging, target)
