"""What ``trait new`` asks for and keeps (:class:`Settings`), what it did (:class:`Report`), the prompts' fixed
parts (categories, topics, strengths, the rubric) and the strict parsing of what a writer returns."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from traitloop.errors import UserError
from traitloop.traits import Filter

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
    max_rounds: int = 5  # most rounds of asking again, per set, for what the filters removed
    max_requests: int | None = None  # most requests to the writer in all (cached replies included)
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


REACHED = "reached the size"
LOOSEN = {
    "trait judge (>=": "lower --seed-min (or raise --max-rounds)",
    "trait judge (<=": "raise --contrast-max (or raise --max-rounds)",
}
MORE = "raise --max-rounds or --max-requests, or use a stronger --generator"


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
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)  # per set: wanted, rounds, asked, kept, stopped
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seed_file: dict[str, Any] | None = None  # with --seed-file: where from, how many kept and held out
    seconds: float = 0.0

    def count_batch(self, kind: str, what: str, n: int = 1) -> None:
        counts = self.batches.setdefault(kind, {"asked": 0, "retries": 0, "failed": 0})
        counts[what] += n

    def count_set(self, label: str, wanted: int = 0) -> dict[str, Any]:
        """The rounds of one filtered set (created on first use; ``wanted`` adds to what it must deliver);
        ``removed`` is the same counter as ``self.removed[label]``."""
        entry = self.sets.setdefault(
            label,
            {"wanted": 0, "rounds": 0, "asked": 0, "asked_per_round": [], "kept": 0,
             "removed": self.removed.setdefault(label, {}), "stopped": ""},
        )  # fmt: skip
        entry["wanted"] += wanted
        return entry

    def count_round(self, label: str, asked: int) -> None:
        entry = self.count_set(label)
        entry["rounds"] += 1
        entry["asked"] += asked
        entry["asked_per_round"].append(asked)

    def finish_set(self, label: str, kept: int, stopped: str) -> None:
        """Record what a set delivered and why it stopped; a shortfall becomes a warning naming what to loosen."""
        entry = self.count_set(label)
        if not (stopped == REACHED and kept < entry["wanted"] and entry["stopped"]):  # an earlier call's shortfall
            entry["stopped"] = stopped
        entry["kept"] = kept
        if kept < entry["wanted"]:
            self.warnings = [w for w in self.warnings if not w.startswith(f"{label}: ")] + [shortfall(label, entry)]

    def summary(self) -> list[str]:
        """One line per set: rounds, asked, kept of wanted, removals (largest first), why it stopped."""
        lines = []
        for label, e in self.sets.items():
            removed = ", ".join(f"{k} {v}" for k, v in sorted(e["removed"].items(), key=lambda kv: -kv[1]) if v)
            lines.append(
                f"{label}: {e['kept']} of {e['wanted']} kept, {e['asked']} asked in {e['rounds']} round(s)"
                f"{f'; removed: {removed}' if removed else ''}; {e['stopped']}"
            )
        return lines


def shortfall(label: str, entry: dict[str, Any]) -> str:
    """The warning for a set short of its size: the filter that removed the most, and the option loosening it."""
    text = f"{label}: {entry['kept']} of {entry['wanted']} kept after {entry['rounds']} round(s) ({entry['stopped']})"
    removed = {k: v for k, v in entry["removed"].items() if v}
    if not removed:
        return f"{text}; the writer's replies were too few or did not parse: {MORE}"
    top = max(removed, key=lambda k: removed[k])
    hint = next((option for prefix, option in LOOSEN.items() if top.startswith(prefix)), MORE)
    return f"{text}; the filter that removed the most is '{top}' ({removed[top]} of {entry['asked']} asked): {hint}"


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


def check_name(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise UserError(f"bad trait name {name!r}: use lower-case letters, digits, - and _ (e.g. 'stoic')")
    return name


def check_description(name: str, description: str) -> str:
    """The description, or an error saying what a usable one looks like."""
    check_name(name)
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
