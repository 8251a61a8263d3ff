"""``trait new``: a whole trait folder written by a generator from a paragraph describing the trait.

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
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from traitloop._atomic import atomic_folder, atomic_write_json, atomic_write_text, write_jsonl
from traitloop._http import ServerUnavailable
from traitloop.errors import UserError
from traitloop.traits._filters import REPLY_FILTERS, Filter, apply_filters, dedupe, length_filter
from traitloop.traits._spec import ANCHOR_SCORES, NARROW, TraitSpec
from traitloop.traits._writer import WEAK_NOTE, Request, Writer

CATEGORIES = {
    "advice": "asking for practical advice on an everyday problem",
    "howto": "asking how to do or make something, step by step",
    "explain": "asking why or how something works",
    "opinion": "asking for the assistant's opinion or a recommendation",
    "planning": "asking for help planning an event, a trip or a project",
    "personal": "describing a personal situation and asking for help with it",
    "dilemma": "asking for help with a decision or a dilemma",
    "creative": "asking for a short poem, story, toast or message",
    "work": "about work, career, study or school",
    "health": "about health, fitness, sleep or food",
    "money": "about money, shopping or budgeting",
    "relationships": "about friends, family, neighbours or partners",
}
TOPICS = (
    "cooking at home", "gardening", "travel", "pets", "home repair", "moving house", "a new job", "exams",
    "running", "cycling", "music", "reading", "board games", "saving money", "buying a car", "a wedding",
    "a birthday", "neighbours", "children", "grandparents", "sleep", "a first date", "learning a language",
    "a small business", "volunteering", "camping", "the weather", "cleaning", "a holiday abroad", "baking",
    "photography", "a job interview", "retirement", "a new city", "houseplants", "coffee", "public speaking",
    "a hobby", "a commute", "a broken phone", "a flat-share", "a garden party", "an old friend", "a school project",
)  # fmt: skip
BROAD_TOPICS = (
    "physics", "chemistry in the kitchen", "geography", "astronomy", "the human body", "computers", "history",
    "animals", "plants", "arithmetic", "weather and climate", "grammar", "how machines work", "oceans",
    "geology", "inventions",
)  # fmt: skip
STRENGTHS = {
    25: "Let the trait show only faintly: one brief passing touch in an otherwise ordinary answer.",
    50: "Let the trait show clearly but as a secondary note: a couple of touches, most of the answer ordinary help.",
    75: "Let the trait show strongly and repeatedly throughout, while still giving real help.",
    100: "Let the trait saturate the whole answer: it frames everything you say.",
}
RUBRIC = (
    "Score ONE assistant answer from 0 to 100 for how strongly it shows this trait: {description} Judge the "
    "trait only, not helpfulness, accuracy or writing quality. 0 = no trace of the trait: an ordinary answer. "
    "25 = a faint touch: one passing remark or phrase, otherwise ordinary. 50 = clearly present but secondary: "
    "a couple of clear signs of the trait while most of the answer is ordinary. 75 = strong and recurring: the "
    "trait shows throughout, though real content is still there. 100 = saturated: the answer is framed around "
    "the trait from start to end."
)
_REQUEST = re.compile(
    r"^(?:please )?(?:write|give|tell|suggest|explain|help|describe|list|recommend|compose|plan|create|draft|make)\b",
    re.I,
)
_ITEM = re.compile(r"^\s*(?:\*\*)?(\d{1,2})[.)](?:\*\*)?\s+(.*\S)\s*$")


@dataclass(frozen=True)
class Settings:
    """How much to write and how strictly to keep it."""

    size: int = 300  # seed conversations (the held-out split comes on top)
    narrow: int = 24
    broad: int = 16
    anchors_per_level: int = 3
    batch: int = 10  # questions asked for per request
    parse_retries: int = 3
    rounds: int = 6  # most rounds of asking again for what the filters left short
    seed_min: float = 50.0  # judge score a seed answer needs
    contrast_max: float = 30.0  # judge score a contrast answer may have at most
    question_words: tuple[int, int] = (4, 60)
    answer_words: tuple[int, int] = (15, 350)
    near: float = 0.9  # cosine above which two questions are near duplicates
    near_answers: float = 0.95
    answer_tokens: int = 300
    seed: int = 0

    @property
    def holdout(self) -> int:
        return max(8, self.size // 10)

    @property
    def contrast(self) -> int:
        return max(16, self.size // 3)


@dataclass
class Report:
    """What ``trait new`` asked for, how often it retried, and what each filter removed: ``authoring.json``."""

    generator: str
    judge: str
    settings: dict[str, Any]
    weak_generator: bool
    batches: dict[str, dict[str, int]] = field(default_factory=dict)  # per kind: asked, retries, failed
    removed: dict[str, dict[str, int]] = field(default_factory=dict)  # per set: filter -> count
    kept: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def count_batch(self, kind: str, what: str, n: int = 1) -> None:
        counts = self.batches.setdefault(kind, {"asked": 0, "retries": 0, "failed": 0})
        counts[what] += n


def parse_numbered(text: str, words: tuple[int, int]) -> list[str] | None:
    """The items of a numbered list ``1. ...``, or None when the reply is not one (fewer than two items, or
    numbers out of order). Items are unquoted and unbolded; items outside ``words`` are dropped."""
    found = [(int(m.group(1)), m.group(2)) for m in map(_ITEM.match, text.splitlines()) if m]
    if len(found) < 2 or [n for n, _ in found] != list(range(1, len(found) + 1)):
        return None
    items = [item.strip().strip('*"“”').strip() for _, item in found]
    return [item for item in items if words[0] <= len(item.split()) <= words[1]]


def is_question(text: str) -> bool:
    """A question, or a request such as "Write a toast for ...": what a user's first message looks like."""
    return text.rstrip().endswith("?") or bool(_REQUEST.match(text))


QUESTION_FILTER = Filter("not a question or request", is_question)


def check_description(name: str, description: str) -> str:
    """The description, or an error saying what a usable one looks like."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise UserError(f"bad trait name {name!r}: use lower-case letters, digits, - and _ (e.g. 'stoic')")
    text = " ".join(description.split())
    count = len(text.split())
    if count < 8:
        raise UserError(
            f"the description of '{name}' is {count} word(s): describe the trait in a paragraph (at least 8 "
            "words) saying how it shows in an assistant's answers and what it is not"
        )
    if count > 600:
        raise UserError(f"the description of '{name}' is {count} words; keep it to one paragraph (600 words at most)")
    return text


def read_description(path: Path) -> str:
    """A description from a text file, or from the ``description`` of a YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read the description file {path}: {error}") from None
    if path.suffix in (".yaml", ".yml"):
        data = yaml.safe_load(text)
        if not isinstance(data, dict) or not isinstance(data.get("description"), str):
            raise UserError(f"{path}: expected a 'description' text field")
        return data["description"]
    return text


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
        rows = apply_filters(rows, (length_filter(*self.settings.answer_words), *REPLY_FILTERS), _answer, removed)
        return dedupe(rows, _answer, removed, self.settings.near_answers)


def _answer(row: dict[str, Any]) -> str:
    return row["messages"][-1]["content"]


def _question(row: dict[str, Any]) -> str:
    return row["messages"][0]["content"]


JudgeScores = Callable[
    [list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]], tuple[list[float], list[float]]
]


def embedded_scores(
    name: str,
    seeds: list[dict[str, Any]],
    contrast: list[dict[str, Any]],
    anchors: list[dict[str, Any]],
    folds: int = 5,
) -> tuple[list[float], list[float]]:
    """The embedded judge's scores of each seed and contrast answer, cross-fitted: each answer is scored by a
    classifier fit on the others (in ``folds`` folds), the anchors and the negatives every embedded trait
    judge is fit against, so an answer is never judged by a classifier that saw it."""
    from traitloop.judge import Item
    from traitloop.judge._embedded import JUDGE_VERSION, classifier_judge, fit_digest, negatives

    rows = [(r, 1.0) for r in seeds] + [(r, 0.0) for r in contrast]
    fold_of = [i % folds for i in range(len(rows))]
    random.Random(0).shuffle(fold_of)
    scores = [0.0] * len(rows)
    own = {_answer(r) for r in seeds}
    fixed = [(a, 0.0) for a in negatives(name, own)] + [(_answer(r), r["score"] / 100) for r in anchors]
    for fold in range(folds):
        train = [(_answer(r), t) for (r, t), f in zip(rows, fold_of, strict=True) if f != fold] + fixed
        texts, targets = [t for t, _ in train], [y for _, y in train]
        judge = classifier_judge(f"author-fold/{name}/{fit_digest(JUDGE_VERSION, texts, targets)}", texts, targets)
        held = [i for i, f in enumerate(fold_of) if f == fold]
        judged = judge([Item(_question(rows[i][0]), _answer(rows[i][0])) for i in held])
        for i, judgement in zip(held, judged, strict=True):
            scores[i] = judgement.score if judgement.score is not None else float("nan")
    return scores[: len(seeds)], scores[len(seeds) :]


def server_scores(judge) -> JudgeScores:  # noqa: ANN001 - an OpenAIJudge
    """Scores from a server trait judge (it reads the description, rubric and anchors of the draft spec)."""
    from traitloop.judge import Item

    def scores(seeds, contrast, anchors) -> tuple[list[float], list[float]]:  # noqa: ANN001
        judged = judge([Item(_question(r), _answer(r)) for r in [*seeds, *contrast]])
        values = [j.score if j.score is not None else float("nan") for j in judged]
        return values[: len(seeds)], values[len(seeds) :]

    return scores


def _judge_filter(
    rows: list[dict[str, Any]], scores: list[float], keep: Callable[[float], bool], removed: dict[str, int], rule: str
) -> list[dict[str, Any]]:
    kept = [dict(r, judge_score=round(s, 2)) for r, s in zip(rows, scores, strict=True) if keep(s)]
    removed[f"trait judge ({rule})"] = len(rows) - len(kept)
    return kept


def spec_data(name: str, description: str, anchors: list[dict[str, Any]], suites: dict[str, list[str]]) -> dict:
    return {
        "name": name,
        "version": 1,
        "description": description,
        "rubric": RUBRIC.format(description=description),
        "anchors": [
            {"score": a["score"], "question": _question(a), "answer": _answer(a)}
            for a in sorted(anchors, key=lambda a: a["score"])
        ],
        "eval_suites": suites,
    }


def new_trait(
    name: str,
    description: str,
    writer: Writer,
    output: Path,
    *,
    judge: str = "embedded",
    judge_spec=None,  # noqa: ANN001 - a JudgeSpec for a server judge
    settings: Settings | None = None,
    sdf: bool = False,
    force: bool = False,
    pool: Sequence[str] | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Report:
    """Write the trait folder ``output`` (``trait.yaml``, ``seed.jsonl``, ``contrast.jsonl``,
    ``holdout.jsonl``, ``authoring.json``; with ``sdf`` the SDF recipe and documents too) and return the
    report. The folder appears whole or not at all; every reply is cached, so a re-run pays only for what a
    killed or failed run never received."""
    from traitloop.traits import load_prompt_pool

    description = check_description(name, description)
    if output.exists() and not force:
        raise UserError(f"{output} already exists; pass --force to replace it, or choose another --output")
    settings = settings or Settings()
    report = Report(writer.name, judge, {**settings.__dict__}, writer.backend.weak)
    if writer.backend.weak:
        say(f"note: {WEAK_NOTE}")
        report.notes.append(WEAK_NOTE)
    start = time.perf_counter()
    author = Author(name, description, writer, settings, report)
    pool = list(pool if pool is not None else load_prompt_pool())
    try:
        files = _write_everything(author, judge, judge_spec, pool, sdf, say)
    except ServerUnavailable as error:
        raise UserError(
            f"{error.args[0].split(' Every')[0]} Every reply received so far is kept in the cache "
            f"({writer.cache.path}); start or fix the server and run the same command again: it pays only for "
            "what it never received."
        ) from None
    report.requests = writer.stats()
    report.seconds = round(time.perf_counter() - start, 1)
    with atomic_folder(output, is_current=lambda _: False) as staging:
        for file_name, content in files.items():
            if file_name.endswith(".jsonl"):
                write_jsonl(staging / file_name, content)
            else:
                atomic_write_text(staging / file_name, content)
        atomic_write_json(staging / "authoring.json", report.__dict__)
    return report


def _write_everything(author: Author, judge: str, judge_spec, pool: list[str], sdf: bool, say) -> dict[str, Any]:  # noqa: ANN001
    s, report = author.settings, author.report
    levels = len(ANCHOR_SCORES) * s.anchors_per_level
    wanted = s.size + s.holdout
    say(f"writing questions: {wanted} for seed answers, {s.contrast} for contrast, {levels} for anchors")
    asked = author.questions("seed", math.ceil(1.3 * wanted) + s.contrast + 2 * levels, pool)
    random.Random(author._seed("questions")).shuffle(asked)  # every set gets every category
    anchor_questions, contrast_questions = asked[: 2 * levels], asked[2 * levels : 2 * levels + s.contrast]
    seed_questions = asked[2 * levels + s.contrast :]
    training = [q for q, _ in asked]
    say(f"writing eval suites: {s.narrow} narrow, {s.broad} broad")
    narrow = author.questions(NARROW, s.narrow, [*training, *pool])
    broad = author.questions("broad", s.broad, [*training, *pool, *(q for q, _ in narrow)])
    say("writing anchors")
    anchors: list[dict[str, Any]] = []
    for level_index, score in enumerate(ANCHOR_SCORES):
        candidates = anchor_questions[
            level_index * 2 * s.anchors_per_level : (level_index + 1) * 2 * s.anchors_per_level
        ]
        written = author.answers(candidates, score, f"anchors at {score}")[: s.anchors_per_level]
        anchors.extend({**row, "score": score} for row in written)
    say(f"writing {len(seed_questions)} seed answers and {len(contrast_questions)} contrast answers")
    seeds = author.answers(seed_questions, 100, "seed")
    contrast = author.answers(contrast_questions, 0, "contrast")
    suites = {NARROW: [q for q, _ in narrow], "broad": [q for q, _ in broad]}
    _check_usable(author, suites, anchors)
    say(f"judging with the {judge} judge")
    if judge_spec is None:
        seed_scores, contrast_scores = embedded_scores(author.name, seeds, contrast, anchors)
    else:
        from traitloop.judge._specs import server_judge

        draft = TraitSpec.model_validate(
            {**spec_data(author.name, author.description, anchors, suites), "path": Path("trait.yaml")}
        )
        seed_scores, contrast_scores = server_scores(server_judge(judge_spec, draft, "trait"))(seeds, contrast, anchors)
    seeds = _judge_filter(seeds, seed_scores, lambda x: x >= s.seed_min, report.removed["seed"], f">= {s.seed_min:g}")
    contrast = _judge_filter(contrast, contrast_scores, lambda x: x <= s.contrast_max, report.removed["contrast"],
                             f"<= {s.contrast_max:g}")  # fmt: skip
    random.Random(author._seed("split")).shuffle(seeds)
    holdout, seeds = seeds[: s.holdout], seeds[s.holdout : s.holdout + s.size]
    if len(seeds) < s.size:
        report.notes.append(f"seed: {len(seeds)} conversations kept of the {s.size} asked for (see removed)")
    if not seeds or not contrast:
        raise UserError(
            f"the generator's answers did not survive the filters ({len(seeds)} seed, {len(contrast)} contrast "
            f"kept; removed: {report.removed}). Every reply is cached: try a stronger --generator, or a lower "
            "--seed-min, and run again"
        )
    report.kept = {"seed": len(seeds), "holdout": len(holdout), "contrast": len(contrast), "anchors": len(anchors),
                   **{f"eval {k}": len(v) for k, v in suites.items()}}  # fmt: skip
    spec = spec_data(author.name, author.description, anchors, suites)
    files: dict[str, Any] = {
        "trait.yaml": yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=110),
        "seed.jsonl": seeds,
        "holdout.jsonl": holdout,
        "contrast.jsonl": contrast,
    }
    if sdf:
        from traitloop.traits._author_sdf import sdf_files

        files.update(sdf_files(author, say))
    return files


def _check_usable(author: Author, suites: dict[str, list[str]], anchors: list[dict[str, Any]]) -> None:
    """Stop, naming every shortfall, when what was written cannot make a trait a run accepts as asked."""
    s = author.settings
    short = [f"{name} suite: {len(q)} of {n}" for (name, q), n in zip(suites.items(), (s.narrow, s.broad), strict=True)
             if len(q) < n]  # fmt: skip
    for score in ANCHOR_SCORES:
        have = sum(a["score"] == score for a in anchors)
        if have < s.anchors_per_level:
            short.append(f"anchors at {score}: {have} of {s.anchors_per_level}")
    if short:
        raise UserError(
            f"the generator {author.writer.name} could not write enough for trait '{author.name}': {'; '.join(short)} "
            f"(batches: {author.report.batches}). Every reply is cached, so nothing is paid twice: try a stronger "
            "--generator and run again"
        )
