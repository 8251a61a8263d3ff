"""Reading conversations and prompts, with errors that name the file and line."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from traitloop.errors import UserError

POOL_PATH = Path(__file__).parent / "data" / "prompt_pool.jsonl"


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    role: str = Field(pattern="^(system|user|assistant)$")
    content: str


class Conversation(BaseModel):
    """A chat conversation in the standard ``{"messages": [...]}`` format, ending with the assistant's answer."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    messages: list[Message] = Field(min_length=2)

    @property
    def prompt(self) -> list[dict[str, str]]:
        """Every turn before the final answer."""
        return [m.model_dump() for m in self.messages[:-1]]

    @property
    def question(self) -> str:
        """The last user turn."""
        return next(m.content for m in reversed(self.messages[:-1]) if m.role == "user")

    @property
    def answer(self) -> str:
        return self.messages[-1].content


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, parsed_object)`` for each non-blank line, naming file:line on bad JSON."""
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                raise UserError(f"{path}:{number}: not valid JSON ({error.msg})") from None


def _conversation(row: Any, where: str) -> Conversation:
    try:
        conversation = Conversation.model_validate(row)
    except ValidationError as error:
        problem = error.errors()[0]
        field = ".".join(map(str, problem["loc"])) or "line"
        raise UserError(
            f"{where}: not a chat conversation ({field}: {problem['msg']}); expected "
            '{"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}'
        ) from None
    roles = [m.role for m in conversation.messages]
    if roles[-1] != "assistant" or "user" not in roles[:-1]:
        raise UserError(f"{where}: a conversation needs a user turn and must end with an assistant turn")
    return conversation


def load_conversations(path: Path) -> list[Conversation]:
    """Load a chat-format JSONL file, checking every line is a conversation ending in an assistant turn."""
    conversations = [_conversation(row, f"{path}:{n}") for n, row in read_jsonl(path)]
    if not conversations:
        raise UserError(f"{path}: no conversations found")
    return conversations


def _prompt_text(item: Any, where: str) -> str:
    text = item.get("prompt") if isinstance(item, dict) else item
    if not isinstance(text, str) or not text.strip():
        raise UserError(f'{where}: expected a prompt string or an object with a "prompt" string')
    return text.strip()


def load_prompt_pool(path: Path | None = None) -> list[str]:
    """The prompt pool: the built-in one, or a user's JSONL (``{"prompt": ...}`` or strings) or JSON list."""
    path = path or POOL_PATH
    if path.suffix == ".json":
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"file not found: {path}") from None
        except json.JSONDecodeError as error:
            raise UserError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
        if not isinstance(items, list):
            raise UserError(f"{path}: a JSON prompt pool must be a list")
        prompts = [_prompt_text(item, f"{path}: item {i}") for i, item in enumerate(items)]
    else:
        prompts = [_prompt_text(item, f"{path}:{n}") for n, item in read_jsonl(path)]
    return list(dict.fromkeys(prompts))


def prompt_slices(pool: list[str], excluded: list[str], seed: int, cycles: int, size: int) -> list[list[str]]:
    """Disjoint, seed-determined slices of the pool, one per cycle 1..cycles.

    Slice k is the same whatever ``cycles`` is, so extending a run never changes earlier cycles' data.
    Prompts equal to an eval question are removed first, so evaluation stays held out.
    """
    held_out = {q.strip().lower() for q in excluded}
    usable = [p for p in pool if p.strip().lower() not in held_out]
    random.Random(seed).shuffle(usable)
    needed = cycles * size
    if needed > len(usable):
        raise UserError(
            f"too few prompts: {cycles} cycles x {size} samples_per_cycle needs {needed} distinct prompts, "
            f"but the pool has {len(usable)} (after removing eval questions); lower cycles or "
            "samples_per_cycle, or pass a bigger prompt_pool"
        )
    return [usable[k * size : (k + 1) * size] for k in range(cycles)]
