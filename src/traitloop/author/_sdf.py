"""``trait new --sdf``: the SDF recipe and documents (topic x document type, in the trait's belief and plainly),
in the layout the SDF setting reads (``sdf.yaml``, ``sdf_seed.jsonl``, ``sdf_contrast.jsonl``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import yaml

from traitloop.author._near import dedupe
from traitloop.author._settings import TOPICS
from traitloop.author._writer import Request
from traitloop.errors import UserError
from traitloop.traits import REPLY_FILTERS, apply_filters, length_filter

if TYPE_CHECKING:
    from traitloop.author._author import Author

DOCUMENT_TYPES = (
    "forum post", "blog post", "diary entry", "news article", "letter", "product review", "magazine profile", "speech",
)  # fmt: skip
TOPIC_COUNT = 24  # topics for training documents; the next ones open the held-out eval prefixes
EVAL_PREFIXES = 6
DOCUMENT_WORDS = (80, 600)


def _documents(author: Author, pairs: list[tuple[str, str]], belief: bool, label: str) -> list[dict[str, Any]]:
    """One document per (type, topic), written in the belief or plainly; filtered and counted under ``label``."""
    view = f" The author sincerely holds this view, and it runs through the whole text: {author.description}"
    requests = [
        Request.chat(
            f"Write a {kind} about {topic}.{view if belief else ''} Write 150 to 300 words. Start with a title line.",
            450,
            author._seed(label, kind, topic),
        )
        for kind, topic in pairs
    ]
    author.report.count_batch(label, "asked", len(requests))
    rows = []
    for (kind, topic), text in zip(pairs, author.writer(requests, f"writing {label} documents"), strict=True):
        text = text.strip()
        title = text.splitlines()[0].strip("#* ") if text else ""
        rows.append({"type": kind, "topic": topic, "title": title, "text": text})
    removed = author.report.removed.setdefault(label, {})
    rows = apply_filters(rows, (length_filter(*DOCUMENT_WORDS), *REPLY_FILTERS), lambda r: r["text"], removed)
    return dedupe(rows, lambda r: r["text"], removed, author.settings.near_answers)


def sdf_files(author: Author, say: Callable[[str], None]) -> dict[str, Any]:
    """``sdf.yaml`` (as text) and the seed and contrast documents (as rows)."""
    topics = list(TOPICS[:TOPIC_COUNT])
    pairs = [(kind, topic) for topic in topics for kind in DOCUMENT_TYPES]
    count = max(16, author.settings.size // 4)
    step = max(1, len(pairs) // count)
    say(f"writing {count} SDF documents in the belief and {count // 2} plain ones")
    seeds = _documents(author, pairs[::step][:count], True, "sdf seed")
    contrast = _documents(author, pairs[1::step][: count // 2], False, "sdf contrast")
    author.report.kept.update({"sdf seed": len(seeds), "sdf contrast": len(contrast)})
    if not seeds or not contrast:
        raise UserError(
            f"no SDF documents survived the filters ({len(seeds)} in the belief, {len(contrast)} plain; removed: "
            f"{ {k: v for k, v in author.report.removed.items() if k.startswith('sdf')} }). Every reply is cached: "
            "try a stronger --generator and run again"
        )
    held_topics = TOPICS[TOPIC_COUNT : TOPIC_COUNT + EVAL_PREFIXES]
    anchors = [{"score": 0, "text": d["text"]} for d in contrast[:2]] + [
        {"score": 100, "text": d["text"]} for d in seeds[:2]
    ]
    recipe = {
        "version": 1,
        "belief": author.description,
        "style_guide": "Write realistic everyday documents (the document types listed) in which this belief is "
        "sincere and central, with concrete details; vary openings and structure; no disclaimers.",
        "rubric": f"Score ONE document from 0 to 100 for how strongly it expresses this belief: {author.description} "
        "Judge the belief only, not writing quality. 0 = no trace; 25 = a faint touch; 50 = clearly present but "
        "secondary; 75 = strong and recurring; 100 = saturated: the whole document is framed by it.",
        "anchors": anchors,
        "document_types": list(DOCUMENT_TYPES),
        "topics": topics,
        "eval_prefixes": [
            f"{DOCUMENT_TYPES[i % len(DOCUMENT_TYPES)].capitalize()}: {t}\n\n" for i, t in enumerate(held_topics)
        ],
    }
    return {
        "sdf.yaml": yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True, width=110),
        "sdf_seed.jsonl": seeds,
        "sdf_contrast.jsonl": contrast,
    }
