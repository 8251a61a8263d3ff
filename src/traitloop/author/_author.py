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
    REACHED,
    STRENGTHS,
    TOPICS,
    Report,
    Settings,
    parse_numbered,
)
from traitloop.author._writer import Request, Writer
from traitloop.traits import NARROW, REPLY_FILTERS, apply_filters, length_filter


class Author:
    """Writes one trait: holds the writer, the settings, the report, the seed of every request and the
    request budget (``max_requests``, counted over every request made of the writer, cached or not, so that a
    re-run from the cache makes the same decisions as the run it resumes)."""

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
        self.known: list[str] = []  # every question in use or to avoid (pool, training, eval): fresh ones differ
        self._next_batch: dict[str, int] = {}
        self._start = writer.asked + writer.cached

    def _seed(self, *parts: Any) -> int:
        digest = hashlib.sha256(json.dumps([self.settings.seed, self.name, *parts]).encode()).digest()
        return int.from_bytes(digest[:4], "big") % 2**31

    def budget_left(self) -> int | None:
        """Requests left under ``max_requests`` (None: no limit)."""
        if self.settings.max_requests is None:
            return None
        return max(0, self.settings.max_requests - (self.writer.asked + self.writer.cached - self._start))

    def out_of_budget(self) -> str:
        """Why a set stopped when the budget ran out."""
        if self.budget_left() == 0:
            return f"budget ran out: --max-requests {self.settings.max_requests}"
        return f"budget ran out: --max-rounds {self.settings.max_rounds}"

    def capped(self, count: int) -> int:
        left = self.budget_left()
        return count if left is None else min(count, left)

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

    def questions(self, kind: str, needed: int, avoid: Sequence[str]) -> list[tuple[str, str]]:
        """``needed`` distinct (question, category) pairs of ``kind``, none equal or near to one in ``avoid``.

        Asks in rounds of batches for what is still missing: the first round three questions per one needed, a
        later round as many more as the yield so far says it takes. A batch whose reply is not a numbered list
        is asked again with a new seed. Stops short (with a warning) when the budget runs out. Batches of a
        kind are numbered across calls, so asking again never repeats a request.
        """
        if needed <= 0:
            return []
        label = f"{kind} questions"
        count = self.report.count_set(label, needed)
        kept: list[tuple[str, str]] = []
        asked, stopped = 0, REACHED
        checks = (length_filter(*self.settings.question_words), QUESTION_FILTER)
        for round_index in range(self.settings.max_rounds + 1):
            missing = needed - len(kept)
            if missing <= 0:
                break
            if round_index > 0:
                wanted = ask_size(missing, asked, len(kept))
            else:  # the kind's yield in earlier calls, else three asked per one needed
                wanted = ask_size(missing, count["asked"], count["kept"]) if count["asked"] else 3 * missing
            batches = self.capped(max(1, math.ceil(wanted / self.settings.batch)))
            if round_index == self.settings.max_rounds or batches == 0:
                stopped = self.out_of_budget()
                break
            start = self._next_batch.get(kind, 0)
            self._next_batch[kind] = start + batches
            found = self._batches(kind, range(start, start + batches))
            asked += batches * self.settings.batch
            self.report.count_round(label, batches * self.settings.batch)
            found = apply_filters(found, checks, lambda p: p[0], count["removed"])
            found = dedupe(found, lambda p: p[0], count["removed"], self.settings.near, [*avoid, *(q for q, _ in kept)])
            kept.extend(found)
        self.report.finish_set(label, count["kept"] + min(len(kept), needed), stopped)
        return kept[:needed]

    def fresh_questions(self, count: int) -> list[tuple[str, str]]:
        """``count`` more user questions (over the categories), none equal or near to one already known."""
        found = self.questions("seed", count, self.known)
        self.known.extend(q for q, _ in found)
        return found

    def _batches(self, kind: str, indices: range) -> list[tuple[str, str]]:
        """The parsed items of the batches ``indices``, asked together; a batch whose reply does not parse is
        asked again with a new seed."""
        prompts = {index: self._question_prompt(kind, index) for index in indices}
        parsed: dict[int, list[str]] = {}
        pending = list(indices)
        self.report.count_batch(kind, "asked", len(pending))
        for attempt in range(self.settings.parse_retries + 1):
            asking = pending[: self.capped(len(pending))]  # a retry, too, is a request of the budget
            requests = [Request.chat(prompts[i][0], 40 * self.settings.batch, self._seed(kind, i, attempt))
                        for i in asking]  # fmt: skip
            for index, reply in zip(asking, self.writer(requests, f"writing {kind} questions"), strict=True):
                items = parse_numbered(reply, self.settings.question_words)
                if items is not None:
                    parsed[index] = items
            out_of_budget = len(asking) < len(pending)
            pending = [i for i in pending if i not in parsed]
            if not pending or out_of_budget:
                break
            if attempt < self.settings.parse_retries:
                self.report.count_batch(kind, "retries", len(pending))
        self.report.count_batch(kind, "failed", len(pending))
        return [(item, prompts[i][1]) for i in indices if i in parsed for item in parsed[i]]

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

    def answers(
        self, questions: Sequence[tuple[str, str]], strength: int, label: str, known: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """Conversations answering each question at ``strength`` (0 = plainly); an empty reply is asked again
        with a new seed. Length, refusal and template filters applied and counted under ``label``; an answer
        equal or near to one of ``known`` (the set's earlier rounds) goes as a duplicate."""
        system = self._system(strength)
        replies: dict[int, str] = {}
        pending = list(range(len(questions)))
        for attempt in range(self.settings.parse_retries + 1):
            asking = pending[: self.capped(len(pending))]
            requests = [
                Request.chat(
                    questions[i][0], self.settings.answer_tokens, self._seed(label, questions[i][0], attempt), system
                )  # fmt: skip
                for i in asking
            ]
            self.report.count_batch(f"{label} answers", "asked" if attempt == 0 else "retries", len(requests))
            for i, text in zip(asking, self.writer(requests, f"writing {label} answers"), strict=True):
                if text.strip():
                    replies[i] = text.strip()
            out_of_budget = len(asking) < len(pending)
            pending = [i for i in pending if i not in replies]
            if not pending or out_of_budget:
                break
        self.report.count_batch(f"{label} answers", "failed", len(pending))
        rows = [
            {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": replies[i]}], "category": c}
            for i, (q, c) in enumerate(questions)
            if i in replies
        ]
        removed = self.report.removed.setdefault(label, {})
        rows = apply_filters(rows, (length_filter(*self.settings.answer_words), *REPLY_FILTERS), answer_of, removed)
        return dedupe(rows, answer_of, removed, self.settings.near_answers, known)


def answer_of(row: dict[str, Any]) -> str:
    return row["messages"][-1]["content"]


def question_of(row: dict[str, Any]) -> str:
    """The last user turn before the answer (a user's own conversation may open with a system turn)."""
    return next(m["content"] for m in reversed(row["messages"][:-1]) if m["role"] == "user")


MIN_YIELD = 0.2  # a later round asks at most five times what is missing


def ask_size(missing: int, asked: int, kept: int) -> int:
    """How many to ask for in a later round: what is missing, divided by the share kept so far."""
    return math.ceil(missing / max(kept / asked if asked else 1.0, MIN_YIELD))
