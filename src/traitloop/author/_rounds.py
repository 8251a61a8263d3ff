"""Top-up rounds for answer sets: each set is asked again, in rounds, for what its filters removed, until it
holds the size asked for or the budget (``max_rounds``, ``max_requests``) runs out.

The first round answers the questions the recipe set aside for the set; each later round answers fresh
questions, as many as ``missing / yield`` (the share of the set's answers kept so far), so a writer whose
answers mostly fail is asked more. Every request's seed follows from what it asks, and every decision from the
replies, so a command killed inside a round and run again sends only the requests it never got a reply to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from traitloop.author._author import Author, answer_of, ask_size
from traitloop.author._settings import REACHED


@dataclass
class AnswerSet:
    """One set of answers being written: its label, strength, size, its first round's questions, the rows that
    passed the text filters so far (``rows``) and those that passed every filter (``kept``)."""

    label: str
    strength: int
    wanted: int
    first: list[tuple[str, str]]
    rows: list[dict[str, Any]] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)


def answer_rounds(author: Author, sets: list[AnswerSet], settle: Callable[[], None] | None = None) -> None:
    """Write every set in rounds until each keeps ``wanted`` rows or the budget runs out. ``settle`` runs after
    each round to apply the filters that judge a set as a whole (the trait judge): it sets each ``kept``; without
    it a set keeps every row that passed the text filters."""
    counts = {s.label: author.report.count_set(s.label, s.wanted) for s in sets}
    stopped = {s.label: REACHED for s in sets}
    for round_index in range(author.settings.max_rounds + 1):
        short = [s for s in sets if len(s.kept) < s.wanted]
        if not short:
            break
        asked = False
        for s in short:
            count = counts[s.label]
            if round_index == author.settings.max_rounds or author.budget_left() == 0:
                stopped[s.label] = author.out_of_budget()
                continue
            if round_index == 0 and s.first:
                questions = s.first[: author.capped(len(s.first))]
            else:
                questions = author.fresh_questions(author.capped(ask_size(s.wanted - len(s.kept), count["asked"],
                                                                          len(s.kept))))  # fmt: skip
                questions = questions[: author.capped(len(questions))]
            if not questions:
                stopped[s.label] = author.out_of_budget() if author.budget_left() == 0 else "no questions left to ask"
                continue
            s.rows.extend(author.answers(questions, s.strength, s.label, [answer_of(r) for r in s.rows]))
            author.report.count_round(s.label, len(questions))
            asked = True
        if not asked:
            break
        if settle is not None:
            settle()
        else:
            for s in sets:
                s.kept = s.rows
    for s in sets:
        author.report.finish_set(s.label, min(len(s.kept), s.wanted), REACHED if len(s.kept) >= s.wanted
                                 else stopped[s.label])  # fmt: skip
