"""Conversation contexts: the turns an evaluation places before each question (a system prompt, a few turns of
unrelated chat), so a trait can be measured outside the bare question it was seeded on."""

from __future__ import annotations

from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from traitloop.config import NO_CONTEXT
from traitloop.errors import UserError
from traitloop.io import read_yaml
from traitloop.traits._data import Message, first_problem

BUILTIN_CONTEXTS = Path(__file__).parent / "data" / "contexts.yaml"
_TURNS = TypeAdapter(dict[str, list[Message]])


def _read(path: Path) -> dict[str, list[Message]]:
    data = read_yaml(path)
    try:
        contexts = _TURNS.validate_python(data or {})
    except ValidationError as error:
        raise UserError(
            f"invalid contexts file {path}: {first_problem(error)}; expected {{name: [{{role: ..., content: ...}}]}}"
        ) from None
    for name, turns in contexts.items():
        if turns and turns[-1].role == "user":
            raise UserError(
                f"invalid contexts file {path}: context {name!r} ends with a user turn; the question comes next"
            )
    return contexts


def load_context(name: str, context_file: Path | None = None) -> list[dict[str, str]]:
    """The turns of context ``name`` (``none``: no turns), from the built-in contexts or ``context_file``."""
    if name == NO_CONTEXT:
        return []
    contexts = {**_read(BUILTIN_CONTEXTS), **(_read(context_file) if context_file else {})}
    if name not in contexts:
        known = ", ".join([NO_CONTEXT, *contexts])
        raise UserError(f"unknown context {name!r}: the contexts are {known}" + ("" if context_file else
                        " (add your own with evaluation.context_file)"))  # fmt: skip
    return [turn.model_dump() for turn in contexts[name]]
