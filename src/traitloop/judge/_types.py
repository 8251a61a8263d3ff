"""What every judge returns, whatever runs it: a 0-100 score, or none with the reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    """One answer to judge, with the question it answers."""

    question: str
    answer: str


@dataclass(frozen=True)
class Judgement:
    score: float | None
    judge_id: str
    reason: str | None = None


Judge = Callable[[list[Item]], list[Judgement]]
"""A judge scores a batch of items and returns one judgement per item, in order."""
