"""Reading conversations and prompts, with errors that name the file and line."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from traitloop.errors import UserError

POOL_PATH = Path(__file__).parent / "data" / "prompt_pool.jsonl"


def encodable(text: str) -> str:
    """``text`` if it can be written as UTF-8: JSON's ``"\\ud800"`` reads as a lone surrogate, which cannot."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"has an unpaired surrogate \\u{ord(text[error.start]):04x}, which is not text") from None
    return text


Text = Annotated[str, AfterValidator(encodable)]
"""A string that can be written back to a UTF-8 file."""


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    role: str = Field(pattern="^(system|user|assistant)$")
    content: Text


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
    """Yield ``(line_number, parsed_object)`` for each non-blank line, naming file:line on bad JSON or bytes
    that are not UTF-8. Lines end in ``\\n`` (or ``\\r\\n``), as JSON Lines says; a UTF-8 byte order mark
    at the start is allowed. Lines are decoded one by one, so the first bad line is the one named."""
    try:
        lines = path.open("rb")
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except (OSError, ValueError) as error:  # a folder, no permission, a name too long or with a NUL byte
        raise UserError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    with lines:
        for number, raw in enumerate(lines, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                byte = raw[error.start]
                raise UserError(f"{path}:{number}: not UTF-8 text (byte 0x{byte:02x}); save it as UTF-8") from None
            if line.strip():
                yield number, _parse_json(line, f"{path}:{number}")


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{where}: not valid JSON ({error.msg})") from None
    except (ValueError, RecursionError) as error:  # an integer of 5000 digits; arrays nested 100000 deep
        problem = "nested too deeply" if isinstance(error, RecursionError) else str(error).split(";")[0]
        raise UserError(f"{where}: not valid JSON ({problem})") from None


def first_problem(error: ValidationError) -> str:
    """``field: message`` for the first thing pydantic found wrong in a line (``line`` when it is the row)."""
    problem = error.errors()[0]
    return f"{'.'.join(map(str, problem['loc'])) or 'line'}: {problem['msg'].removeprefix('Value error, ')}"


def conversation_of(row: Any, where: str) -> Conversation:
    try:
        conversation = Conversation.model_validate(row)
    except ValidationError as error:
        raise UserError(
            f"{where}: not a chat conversation ({first_problem(error)}); expected "
            '{"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}'
        ) from None
    roles = [m.role for m in conversation.messages]
    if roles[-1] != "assistant" or "user" not in roles[:-1]:
        raise UserError(f"{where}: a conversation needs a user turn and must end with an assistant turn")
    empty = [f"messages.{i} ({m.role})" for i, m in enumerate(conversation.messages) if not m.content.strip()]
    if empty:
        raise UserError(f"{where}: empty content in {', '.join(empty)}; every turn needs text")
    return conversation


def load_conversations(path: Path) -> list[Conversation]:
    """Load a chat-format JSONL file, checking every line is a conversation ending in an assistant turn."""
    conversations = [conversation_of(row, f"{path}:{n}") for n, row in read_jsonl(path)]
    if not conversations:
        raise UserError(f"{path}: no conversations found")
    return conversations


def prompt_slices(
    pool: list[str], excluded: list[str], seed: int, cycles: int, size: int, sampling: str = "disjoint"
) -> list[list[str]]:
    """Seed-determined prompts for each cycle 1..cycles. Prompts equal to an eval question are removed first,
    so evaluation stays held out.

    ``disjoint``: slices of one shuffle of the pool, so no prompt is answered twice in a run; slice k is the same
    whatever ``cycles`` is, so extending a run never changes earlier cycles' data. ``independent``: each cycle
    draws ``size`` distinct prompts afresh from the whole pool (seeded by the run's seed and the cycle), as the
    study did, so cycles may share prompts and ``cycles x size`` may exceed the pool.
    """
    held_out = {q.strip().lower() for q in excluded}
    usable = [p for p in pool if p.strip().lower() not in held_out]
    if sampling == "independent":
        if size > len(usable):
            raise UserError(
                f"too few prompts: samples_per_cycle {size} needs {size} distinct prompts per cycle, but the pool "
                f"has {len(usable)} (after removing eval questions); lower samples_per_cycle or pass a bigger "
                "prompt_pool"
            )
        return [random.Random(f"{seed}:cycle {k}").sample(usable, size) for k in range(1, cycles + 1)]
    random.Random(seed).shuffle(usable)
    needed = cycles * size
    if needed > len(usable):
        raise UserError(
            f"too few prompts: {cycles} cycles x {size} samples_per_cycle needs {needed} distinct prompts, "
            f"but the pool has {len(usable)} (after removing eval questions); lower cycles or "
            "samples_per_cycle, pass a bigger prompt_pool, or set prompt_sampling: independent"
        )
    return [usable[k * size : (k + 1) * size] for k in range(cycles)]


BASE_ANSWERS_PATH = Path(__file__).parent / "data" / "base_answers.jsonl"


def base_answers(split: str) -> list[str]:
    """The embedded model's ordinary answers in one split (``fit`` or ``holdout``): what the trait judge is fit
    against and the persona direction is checked against (``scripts/make_base_answers.py`` writes them)."""
    rows = [row for _, row in read_jsonl(BASE_ANSWERS_PATH)]
    return [row["answer"] for row in rows if row["split"] == split and row["answer"].strip()]
