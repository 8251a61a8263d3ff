"""Near duplicates by the embedded sentence embedder (cosine similarity of normalised embeddings): what
authoring, ``pool import`` and ``trait validate`` add to the exact dedupe of ``traitloop.traits``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from traitloop.judge import embed
from traitloop.traits import dedupe as exact_dedupe

T = TypeVar("T")
_VECTORS: dict[str, Any] = {}


def _embedded(texts: list[str]) -> Any:
    """The texts' embeddings as rows, each text embedded once per process: authoring checks every new batch
    against the same growing list of known questions (the prompt pool's hundreds among them), round after round."""
    import numpy as np

    missing = [t for t in dict.fromkeys(texts) if t not in _VECTORS]
    if missing:
        _VECTORS.update(zip(missing, embed(missing), strict=True))
    return np.stack([_VECTORS[t] for t in texts])


def near_duplicates(texts: Sequence[str], threshold: float, known: Sequence[str] = (), block: int = 2048) -> list[bool]:
    """For each text, whether an earlier text (or one in ``known``) embeds within cosine ``threshold`` of it.

    Greedy in order: the first of a group of near duplicates is kept, the rest are flagged.
    """
    if not texts:
        return []
    import numpy as np

    vectors = _embedded(list(texts))
    flags = np.zeros(len(texts), dtype=bool)
    if known:
        reference = _embedded(list(known))
        for start in range(0, len(texts), block):
            flags[start : start + block] = (vectors[start : start + block] @ reference.T).max(axis=1) >= threshold
    for start in range(0, len(texts), block):
        rows = vectors[start : start + block] @ vectors.T  # this block against every text
        for offset, similar in enumerate(rows >= threshold):
            index = start + offset
            if not flags[index]:
                later = np.flatnonzero(similar[index + 1 :]) + index + 1
                flags[later] = True
    return flags.tolist()


def dedupe(
    items: Sequence[T],
    text: Callable[[T], str] = str,
    counts: dict[str, int] | None = None,
    near: float | None = None,
    known: Sequence[str] = (),
) -> list[T]:
    """Items without exact duplicates (by normal form) and, with ``near``, near duplicates by embedding cosine;
    an item equal or near to one of ``known`` goes too. Counted under ``duplicate`` and ``near duplicate``."""
    counts = {} if counts is None else counts
    kept = exact_dedupe(items, text, counts, known)
    if near is not None:
        flags = near_duplicates([text(i) for i in kept], near, known)
        before = len(kept)
        kept = [item for item, flagged in zip(kept, flags, strict=True) if not flagged]
        counts["near duplicate"] = counts.get("near duplicate", 0) + before - len(kept)
    return kept
