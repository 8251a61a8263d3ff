"""One process per run folder: an advisory lock that the kernel releases when its holder dies.

Two processes working on one run folder would interleave stages and overwrite each other's manifest. The
lock is ``fcntl.flock`` on ``<run>/.traitloop.lock``, so a lock left by a killed process is stale by
construction (the kernel drops it with the process) and the next run simply takes it; the file's content
only says who holds it, for the message a second process gets.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from traitloop.errors import UserError
from traitloop.rundir._layout import LOCK_FILE


class RunLock:
    """``with RunLock(folder):`` holds the run folder for this process, or raises at once naming the holder."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        self._handle: int | None = None
        self.taken_over: dict | None = None  # what a killed holder left in the file, when there was one

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            raise UserError(self._busy_message()) from None
        self.taken_over = _read_holder(handle)
        os.ftruncate(handle, 0)
        os.pwrite(handle, json.dumps(_this_process()).encode(), 0)
        self._handle = handle
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._handle is not None:
            os.ftruncate(self._handle, 0)
            os.close(self._handle)  # closing releases the flock
            self._handle = None

    def _busy_message(self) -> str:
        holder = _read_holder_file(self.path) or {}
        who = f"process {holder.get('pid', '?')} on {holder.get('host', '?')}"
        since = f", since {holder['started']}" if holder.get("started") else ""
        command = f" ({holder['command']})" if holder.get("command") else ""
        return (
            f"{self.path.parent} is in use by {who}{since}{command}; wait for it to finish or stop it. "
            "One process works on a run folder at a time."
        )


def refuse_if_held(folder: Path) -> None:
    """Raise at once, naming the holder, if another process holds ``folder``'s lock; change nothing. A quick
    check before the slow start of a run (the run takes the lock itself when it begins its work)."""
    path = folder / LOCK_FILE
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        return  # no lock file (no run folder yet, or none that was ever run): nobody holds it
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UserError(RunLock(folder)._busy_message()) from None
    finally:
        os.close(handle)  # releases the probe's own lock with it


def _this_process() -> dict:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300],
    }


def _read_holder(handle: int) -> dict | None:
    try:
        text = os.pread(handle, 4096, 0).decode()
        return json.loads(text) if text.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _read_holder_file(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
