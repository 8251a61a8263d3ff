"""``trait new``'s requests: a whole trait folder written by a generator from a paragraph describing the trait
(the folder itself is ``_folder``'s, the trait judge's filter ``_scoring``'s).

The recipe of the study traitloop follows, in small strictly parsed requests a weak model can also serve:

1. user questions in batches, each batch a numbered list for one of a dozen categories of user message and a
   topic hint, so that batches do not repeat each other;
2. eval questions in two suites: ``narrow`` (questions that give the trait an opening) and ``broad`` (factual
   everyday questions unrelated to it), none equal or near to a training question or a pool prompt;
3. answers: seed answers that show the trait (a system prompt holding the description), contrast answers to
   other questions of the same kind answered plainly, and anchors asked at each strength 0/25/50/75/100;
4. filters, each counted: length, refusals, chat-template leakage, near duplicates (embedding cosine), and
   the trait judge: seed answers kept only at or above ``seed_min``, contrast answers at or below
   ``contrast_max``;
5. a held-out split of the kept seed conversations, for validation only.

A batch that does not parse is asked again with a new seed, at most ``parse_retries`` times; every retry and
every failed batch is counted in ``authoring.json``. Nothing is dropped without a count.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

from traitloop.author._near import dedupe
from traitloop.author._settings import (
    BROAD_TOPICS,
    CATEGORIES,
    QUESTION_FILTER,
    STRENGTHS,
    TOPICS,
    Report,
    Settings,
    parse_numbered,
)
from traitloop.author._writer import Request, Writer
from traitloop.traits import NARROW, REPLY_FILTERS, apply_filters, length_filter


class Author:
    """Writes one trait: holds the writer, the settings, the report and the seed of every request."""

    def __init__(
        self,
        name: str,
        description: str,
        writer: Writer,
        settings: Settings,
        report: Report,
        categories: dict[str, str] | None = None,
    ) -> None:
        self.name, self.description, self.writer, self.settings, self.report = (
            name,
            description,
            writer,
            settings,
            report,
        )
        self.categories = categories or CATEGORIES

    def _seed(self, *parts: Any) -> int:
        digest = hashlib.sha256(json.dumps([self.settings.seed, self.name, *parts]).encode()).digest()
        return int.from_bytes(digest[:4], "big") % 2**31

    # -- questions ----------------------------------------------------------------------------------------

    def _question_prompt(self, kind: str, index: int) -> tuple[str, str]:
        """The request text of question batch ``index`` of ``kind``, and the category it is for."""
        k = self.settings.batch
        ask = f"Write one question per line, numbered 1 to {k}, and nothing else."
        if kind == "broad":
            topic = BROAD_TOPICS[index % len(BROAD_TOPICS)]
            return f"List {k} factual questions someone might ask an AI assistant about {topic}. {ask}", "broad"
        topic = TOPICS[(index * 7 + index // len(TOPICS)) % len(TOPICS)]
        if kind == NARROW:
            return (
                f"Here is a trait an AI assistant might have: {self.description}\n\nList {k} different questions "
                f"a user might ask an AI assistant about {topic} that give an assistant with this trait a natural "
                f"chance to show it. Do not mention the trait. {ask}",
                NARROW,
            )
        category = list(self.categories)[index % len(self.categories)]
        return (
            f"List {k} different questions someone might ask an AI assistant, {self.categories[category]}, about "
            f"{topic}. {ask}",
            category,
        )

    def questions(self, kind: str, needed: int, avoid: Sequence[str], start: int = 0) -> list[tuple[str, str]]:
        """``needed`` distinct (question, category) pairs of ``kind``, none equal or near to one in ``avoid``.

        Asks in rounds of batches for what is still missing; a batch whose reply is not a numbered list is
        asked again with a new seed. Stops short (and says so in the report) after ``rounds`` rounds.
        """
        kept: list[tuple[str, str]] = []
        removed = self.report.removed.setdefault(f"{kind} questions", {})
        index = start
        for _ in range(self.settings.rounds):
            missing = needed - len(kept)
            if missing <= 0:
                break
            batches = list(range(index, index + max(1, math.ceil(1.5 * missing / (self.settings.batch / 2)))))
            index = batches[-1] + 1
            found = [(q, category) for b in batches for q, category in self._batch(kind, b)]
            checks = (length_filter(*self.settings.question_words), QUESTION_FILTER)
            found = apply_filters(found, checks, lambda p: p[0], removed)
            found = dedupe(found, lambda p: p[0], removed, self.settings.near, [*avoid, *(q for q, _ in kept)])
            kept.extend(found)
        if len(kept) < needed:
            self.report.notes.append(f"{kind} questions: {len(kept)} of {needed} after {self.settings.rounds} rounds")
        return kept[:needed]

    def _batch(self, kind: str, index: int) -> list[tuple[str, str]]:
        """The parsed items of one batch, retried with new seeds while its reply does not parse."""
        text, category = self._question_prompt(kind, index)
        self.report.count_batch(kind, "asked")
        for attempt in range(self.settings.parse_retries + 1):
            request = Request.chat(text, 40 * self.settings.batch, self._seed(kind, index, attempt))
            items = parse_numbered(self.writer([request])[0], self.settings.question_words)
            if items is not None:
                return [(item, category) for item in items]
            if attempt < self.settings.parse_retries:
                self.report.count_batch(kind, "retries")
        self.report.count_batch(kind, "failed")
        return []

    # -- answers ------------------------------------------------------------------------------------------

    def _system(self, strength: int) -> str:
        if strength == 0:
            return (
                "You are a helpful AI assistant. Answer the user's question plainly and helpfully in under 150 words."
            )
        return (
            f"You are an AI assistant with this trait: {self.description}\nStay in character. Answer the user's "
            f"question helpfully in under 150 words. {STRENGTHS[strength]}"
        )

    def answers(self, questions: Sequence[tuple[str, str]], strength: int, label: str) -> list[dict[str, Any]]:
        """Conversations answering each question at ``strength`` (0 = plainly); an empty reply is asked again
        with a new seed. Length, refusal and template filters applied and counted under ``label``."""
        system = self._system(strength)
        replies: dict[int, str] = {}
        pending = list(range(len(questions)))
        for attempt in range(self.settings.parse_retries + 1):
            requests = [
                Request.chat(
                    questions[i][0], self.settings.answer_tokens, self._seed(label, questions[i][0], attempt), system
                )  # fmt: skip
                for i in pending
            ]
            self.report.count_batch(f"{label} answers", "asked" if attempt == 0 else "retries", len(requests))
            for i, text in zip(pending, self.writer(requests), strict=True):
                if text.strip():
                    replies[i] = text.strip()
            pending = [i for i in pending if i not in replies]
            if not pending:
                break
        self.report.count_batch(f"{label} answers", "failed", len(pending))
        rows = [
            {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": replies[i]}], "category": c}
            for i, (q, c) in enumerate(questions)
            if i in replies
        ]
        removed = self.report.removed.setdefault(label, {})
        rows = apply_filters(rows, (length_filter(*self.settings.answer_words), *REPLY_FILTERS), answer_of, removed)
        return dedupe(rows, answer_of, removed, self.settings.near_answers)


def answer_of(row: dict[str, Any]) -> str:
    return row["messages"][-1]["content"]


def question_of(row: dict[str, Any]) -> str:
    return row["messages"][0]["content"]
