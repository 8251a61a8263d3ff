"""A persistent judgement cache (SQLite): the same judge asked the same prompt is never paid for twice.

A key is the SHA-256 of everything that decides a judgement - judge model, server, prompt template version,
scoring mode and its parameters, and the exact prompt text - and never of the API key. SQLite in WAL mode
commits each judgement in its own transaction, so a run killed mid-write leaves the cache whole, and
several runs (processes) may share one file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traitloop._atomic import folder_lock
from traitloop.models import cache_dir

_SCHEMA = """
CREATE TABLE IF NOT EXISTS judgements (
    key TEXT PRIMARY KEY, score REAL, reason TEXT, raw TEXT, number_mass REAL, created TEXT DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS servers (key TEXT PRIMARY KEY, facts TEXT NOT NULL);
"""


def default_cache_path() -> Path:
    return cache_dir() / "judgements.sqlite"


def cache_key(*parts: Any) -> str:
    """SHA-256 of the JSON of ``parts``: stable across runs, machines and Python versions."""
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class CachedJudgement:
    score: float | None
    reason: str | None
    raw: str | None
    number_mass: float | None


class JudgementCache:
    """Judgements and per-server facts (the detected scoring mode) in one SQLite file, safe across threads."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        # Switching to WAL takes an exclusive lock SQLite does not wait for: processes opening a new cache at
        # once (a sweep's runs) set it up one at a time.
        with folder_lock(self.path.parent), self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    def get(self, key: str) -> CachedJudgement | None:
        with self._lock:
            row = self._db.execute(
                "SELECT score, reason, raw, number_mass FROM judgements WHERE key = ?", (key,)
            ).fetchone()
        return CachedJudgement(*row) if row else None

    def put(self, key: str, judgement: CachedJudgement) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO judgements (key, score, reason, raw, number_mass) VALUES (?, ?, ?, ?, ?)",
                (key, judgement.score, judgement.reason, judgement.raw, judgement.number_mass),
            )

    def server_facts(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT facts FROM servers WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_server_facts(self, key: str, facts: dict[str, Any]) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO servers (key, facts) VALUES (?, ?)", (key, json.dumps(facts)))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM judgements").fetchone()[0]

    def close(self) -> None:
        self._db.close()
