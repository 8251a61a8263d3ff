"""Text filters for prompt pools and generated trait data, each counted: what a pool or a seed set lost, and why.

A filter is a name and a test a text must pass. :func:`apply_filters` runs them in order and counts what each
removed, so a report can say "length: 412, not English: 1,093, ..." and nothing disappears unexplained.
Duplicates here are exact (by normal form); near duplicates need the embedder, and are ``traitloop.author``'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_COMMON_ENGLISH = (
    "the a an to of and in is are was i you it my me your we for on with can do does how what why when "
    "should would could be this that have has not or if at as about which who there"
)
_ENGLISH_WORDS = frozenset(_COMMON_ENGLISH.split())
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"(?:https?://|ftp://|www\.)\S+|\b[\w-]+\.(?:com|org|net|io|gov|edu|co\.uk|ly|ai)(?:/\S*)?\b", re.I)
_PHONE = re.compile(r"(?<![\w.])\+?\(?\d[\d\s().-]{7,}\d(?![\w.])")
_KEY = re.compile(
    r"\b(?:sk-[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|gh[pous]_[A-Za-z0-9]{20,}|xox[abpr]-[A-Za-z0-9-]{10,})"
    r"|(?=[A-Za-z0-9_+/=-]*\d)(?=[A-Za-z0-9_+/=-]*[A-Za-z])\b[A-Za-z0-9_+/=-]{32,}"
)
_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import|#include|function |const |let |var |public |private |"
    r"return\b|if ?\(|for ?\(|while ?\(|SELECT |<\w+[^>]*>|[}{\])]|\w+\s*=\s*[^=]).*$|[;{]\s*$"
)
_REFUSAL = re.compile(
    r"\bas an ai\b|\bI(?:'m| am) (?:sorry|afraid),? but I (?:can(?:no|')t|am unable|won't)"
    r"|\bI (?:can(?:no|')t|am unable to|won't) (?:help|assist|provide|answer|comply|fulfil|do that|write)",
    re.I,
)
_TEMPLATE = re.compile(
    r"<\|[a-z_]+\|>|\[/?INST\]|</?s>|<<SYS>>|^#{2,} ?(?:Instruction|Response)|^(?:Human|Assistant|User|System):"
    r"|^(?:user|assistant|system)\s*$",
    re.I | re.M,
)


def words(text: str) -> int:
    return len(text.split())


def normal_form(text: str) -> str:
    """Lower case, letters and digits only, single spaces: two prompts that differ only in punctuation,
    case or spacing are the same prompt."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def is_english(text: str) -> bool:
    """Mostly Latin letters, and (past three words) some of the commonest English words: cheap and good
    enough to drop the other languages a pool of real chats holds."""
    letters = [c for c in text if c.isalpha()]
    if not letters or sum(c.isascii() for c in letters) / len(letters) < 0.9:
        return False
    tokens = [w.lower() for w in _WORD.findall(text)]
    return len(tokens) <= 3 or any(t in _ENGLISH_WORDS for t in tokens)


def personal_data(text: str) -> str | None:
    """What kind of personal or secret data ``text`` holds (e-mail, URL, phone, key), or None."""
    for kind, pattern in (("e-mail", _EMAIL), ("URL", _URL), ("phone number", _PHONE), ("key", _KEY)):
        match = pattern.search(text)
        if match and (kind != "phone number" or sum(c.isdigit() for c in match.group()) >= 9):
            return kind
    return None


def is_code_dump(text: str) -> bool:
    """A fenced block, or mostly lines that read as code: a prompt that is a program, not a question."""
    if "```" in text:
        return True
    lines = [line for line in text.splitlines() if line.strip()]
    code = sum(bool(_CODE_LINE.search(line)) for line in lines)
    return len(lines) >= 4 and code / len(lines) >= 0.4


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.search(text))


def leaks_template(text: str) -> bool:
    """Chat-template tokens or role headers in a reply: a model that wrote the next turn itself."""
    return bool(_TEMPLATE.search(text))


@dataclass(frozen=True)
class Filter:
    """A named test a text must pass to be kept."""

    name: str
    keep: Callable[[str], bool]


def length_filter(low: int, high: int) -> Filter:
    return Filter(f"length ({low}-{high} words)", lambda text: low <= words(text) <= high)


POOL_FILTERS = (
    Filter("not English", is_english),
    Filter("personal data (e-mail, URL, phone, key)", lambda text: personal_data(text) is None),
    Filter("code dump", lambda text: not is_code_dump(text)),
)
REPLY_FILTERS = (
    Filter("refusal", lambda text: not is_refusal(text)),
    Filter("chat-template leakage", lambda text: not leaks_template(text)),
)


def apply_filters(
    items: Sequence[T], filters: Sequence[Filter], text: Callable[[T], str] = str, counts: dict[str, int] | None = None
) -> list[T]:
    """The items whose text passes every filter, in order; ``counts[filter name]`` gains what each removed
    (a filter sees only what the ones before it kept)."""
    counts = {} if counts is None else counts
    kept = list(items)
    for check in filters:
        passed = [item for item in kept if check.keep(text(item))]
        counts[check.name] = counts.get(check.name, 0) + len(kept) - len(passed)
        kept = passed
    return kept


def exact_duplicates(texts: Sequence[str], known: Sequence[str] = ()) -> list[bool]:
    """For each text, whether its normal form was seen before it (or in ``known``)."""
    seen = {normal_form(t) for t in known}
    flags = []
    for text in texts:
        key = normal_form(text)
        flags.append(key in seen)
        seen.add(key)
    return flags


def dedupe(
    items: Sequence[T], text: Callable[[T], str] = str, counts: dict[str, int] | None = None, known: Sequence[str] = ()
) -> list[T]:
    """Items without exact duplicates (by normal form); an item equal to one of ``known`` goes too. Counted
    under ``duplicate``. (Near duplicates, by embedding, are ``traitloop.author``'s: they need the embedder.)"""
    counts = {} if counts is None else counts
    exact = exact_duplicates([text(i) for i in items], known)
    kept = [item for item, flagged in zip(items, exact, strict=True) if not flagged]
    counts["duplicate"] = counts.get("duplicate", 0) + len(items) - len(kept)
    return kept
