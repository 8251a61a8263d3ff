"""What every judge returns, whatever runs it: a 0-100 score, or none with the reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


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


OnJudged = Callable[[int], None]
"""Called with how many more items a judge has judged, as it goes (a ``traitloop._progress.Step`` is one)."""


class Judge(Protocol):
    """A judge scores a batch of items and returns one judgement per item, in order; ``on_judged`` hears how
    many more are judged as it goes (batch by batch, or request by request)."""

    def __call__(self, items: list[Item], on_judged: OnJudged | None = None) -> list[Judgement]: ...
