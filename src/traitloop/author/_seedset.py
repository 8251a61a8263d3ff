"""``trait new --seed-file``: a trait built around seed conversations the user already has.

The user's conversations are kept as they are: a chat JSONL line that a run reads as it is goes into
``seed.jsonl`` or ``holdout.jsonl`` byte for byte; a conversation in another shape (a ShareGPT
``conversations`` list, a column of a Parquet or CSV file, an item of a JSON list) is written as
``{"messages": [...]}`` with the same turns. No filter or judge ever removes one of them. A description the
user does not give is inferred from the seed answers by the writer, and printed for the user to check.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traitloop.author._author import Author
from traitloop.author._settings import check_description
from traitloop.author._writer import Request
from traitloop.errors import UserError
from traitloop.traits import conversation_of, pool_rows, read_jsonl

MIN_CONVERSATIONS = 8
ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant", "system": "system"}
DESCRIBE_ANSWERS = 12  # seed answers shown to the writer when it infers the description
DESCRIBE_WORDS = 80  # each cut to this many words


@dataclass
class SeedSet:
    """The user's conversations: each as the text it is written back as (``lines``) and as a row (``rows``)."""

    path: Path
    lines: list[str]
    rows: list[dict[str, Any]]
    converted: int

    def split(self, seed: int) -> tuple[list[int], list[int]]:
        """Indices of the seed and of the held-out conversations, each in the file's order: a tenth held out
        (at least 8, at most a quarter), chosen by ``seed``."""
        count = len(self.rows)
        held = min(max(8, count // 10), count // 4)
        order = list(range(count))
        random.Random(seed).shuffle(order)
        holdout = sorted(order[:held])
        return [i for i in range(count) if i not in set(holdout)], holdout


def _turns(value: Any) -> list[Any] | None:
    if isinstance(value, str) and value.lstrip().startswith(("[", "{")):  # a CSV cell holding JSON
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, dict):
        value = value.get("messages", value.get("conversations"))
    return value if isinstance(value, list) else None


def _runs_as_is(row: Any) -> bool:
    """Whether a run reads this row as a conversation as it is (``messages`` with roles and text)."""
    try:
        conversation_of(row, "")
    except UserError:
        return False
    return True


def _messages(value: Any, where: str) -> dict[str, Any]:
    """``{"messages": [...]}`` from a chat in OpenAI (role/content) or ShareGPT (from/value) shape."""
    turns = _turns(value)
    messages = []
    for turn in turns or []:
        if not isinstance(turn, dict) or not isinstance(role := ROLES.get(turn.get("role") or turn.get("from")), str):
            messages = []
            break
        messages.append({"role": role, "content": turn.get("content", turn.get("value"))})
    conversation_of({"messages": messages or None}, where)  # raises naming where, and what a chat looks like
    return {"messages": messages}


def read_seed_file(path: Path, field: str | None = None) -> SeedSet:
    """Every conversation of a seed file: chat JSONL (``messages``, or ShareGPT ``conversations``), a JSON
    list, or a Parquet or CSV table; ``field`` names the key or column holding the chat."""
    path = Path(path)
    lines, rows, converted = [], [], 0
    if path.suffix in (".json", ".parquet", ".csv"):
        found = [(where, row, None) for where, row in pool_rows(path, field)]
    else:
        raw = path.read_bytes().split(b"\n") if path.is_file() else []
        found = [(f"{path}:{n}", row, raw[n - 1].removesuffix(b"\r")) for n, row in read_jsonl(path)]
    for where, row, line in found:
        if field in (None, "messages") and _runs_as_is(row):
            lines.append(line.decode("utf-8").removeprefix("\ufeff") if line is not None else json.dumps(row))
            rows.append(row)
            continue
        if field and not (isinstance(row, dict) and field in row):
            raise UserError(f"{where}: no field '{field}' in this row")
        rows.append(_messages(row[field] if field else row, where))
        lines.append(json.dumps(rows[-1], ensure_ascii=False))
        converted += 1
    if len(rows) < MIN_CONVERSATIONS:
        raise UserError(
            f"{path}: {len(rows)} conversation(s); a seed set needs at least {MIN_CONVERSATIONS} (some are held out)"
        )
    return SeedSet(path, lines, rows, converted)


def infer_description(author: Author, seeds: SeedSet) -> str:
    """A one-paragraph description of the trait the seed answers share, written by the writer; asked again
    with a new seed while it is not a usable description."""
    order = list(range(len(seeds.rows)))
    random.Random(author._seed("describe")).shuffle(order)
    shown = [" ".join(seeds.rows[i]["messages"][-1]["content"].split()[:DESCRIBE_WORDS]) for i in order]
    listed = "\n\n".join(f"Answer {n}: {text}" for n, text in enumerate(shown[:DESCRIBE_ANSWERS], start=1))
    text = (
        f"Here are answers an AI assistant gave to users' questions:\n\n{listed}\n\nThese answers share a trait: a "
        "personality, a style or a belief the assistant shows. Describe that trait in one paragraph of three to "
        'five sentences, starting with "The assistant": say how it shows in the answers and what it is not. '
        "Write only the paragraph."
    )
    problem = ""
    for attempt in range(author.settings.parse_retries + 1):
        reply = author.writer([Request.chat(text, 250, author._seed("describe", attempt))], "describing the trait")[0]
        paragraphs = [" ".join(p.split()).strip('"“” ') for p in reply.split("\n\n") if p.strip()] or [""]
        paragraph = next((p for p in paragraphs if p.startswith("The assistant")), max(paragraphs, key=len))
        try:
            return check_description(author.name, paragraph)
        except UserError as error:
            problem = str(error)
    raise UserError(
        f"the generator {author.writer.name} could not describe the trait from the seed answers "
        f"({author.settings.parse_retries + 1} tries; last: {problem}). Give one with --description or --from."
    )
