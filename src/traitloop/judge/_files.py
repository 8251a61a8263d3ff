"""Scoring a JSONL file of answers: chat conversations or ``{"question", "answer"}`` rows, order kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from traitloop._progress import Progress
from traitloop.errors import UserError
from traitloop.judge._types import Item, Judge
from traitloop.traits import Conversation, read_jsonl


def item_from_row(row: Any, where: str) -> Item:
    """The (question, answer) in a row: the last assistant turn of ``messages``, or ``question``/``answer``."""
    if isinstance(row, dict) and "messages" in row:
        try:
            conversation = Conversation.model_validate(row)
        except ValueError:
            raise UserError(f"{where}: 'messages' is not a list of {{role, content}} turns") from None
        if conversation.messages[-1].role != "assistant" or "user" not in [m.role for m in conversation.messages]:
            raise UserError(f"{where}: a conversation needs a user turn and must end with an assistant turn")
        return Item(conversation.question, conversation.answer)
    if isinstance(row, dict) and isinstance(row.get("question"), str) and isinstance(row.get("answer"), str):
        return Item(row["question"], row["answer"])
    raise UserError(f'{where}: expected {{"messages": [...]}} or {{"question": ..., "answer": ...}}')


def score_rows(
    rows: list[dict[str, Any]],
    items: list[Item],
    trait_judge: Judge,
    coherence_judge: Judge,
    progress: Progress | None = None,
    label: str = "",
) -> None:
    """Add trait and coherence scores (and reasons and judge ids) to each row in place, each judge's progress
    shown in ``progress`` (its tasks named after ``label``, the judge option)."""
    progress = progress or Progress.silent()
    for name, judge in (("trait", trait_judge), ("coherence", coherence_judge)):
        with progress.task(f"{name} ({label})" if label else name, len(items)) as step:
            judged = judge(items, step)
        for row, judgement in zip(rows, judged, strict=True):
            row[f"{name}_score"] = judgement.score
            row[f"{name}_reason"] = judgement.reason
            row[f"{name}_judge"] = judgement.judge_id


def read_items(path: Path) -> tuple[list[dict[str, Any]], list[Item]]:
    rows, items = [], []
    for number, row in read_jsonl(path):
        items.append(item_from_row(row, f"{path}:{number}"))
        rows.append(row)
    return rows, items
