"""The embedded SDF judge: how strongly a document expresses the trait's belief, 0-100, with no network.

Same machinery as the embedded trait judge (classifiers on sentence embeddings, one on the whole text and
one on its sentences, the most belief-laden of which count), fit instead on documents: the recipe's seed
documents (belief present), its contrast documents (belief absent) and its anchored excerpts (score / 100).
Chat answers and documents differ in form, so the two judges are fit and versioned separately.
"""

from __future__ import annotations

from traitloop._progress import Progress
from traitloop.judge._embedded import classifier_judge, fit_digest
from traitloop.judge._types import Judge
from traitloop.traits import TraitSpec, load_documents, load_sdf_recipe

SDF_JUDGE_VERSION = 2  # 2: the sentence half has a classifier fit on sentences


def _training_set(trait: TraitSpec) -> tuple[list[str], list[float]]:
    recipe = load_sdf_recipe(trait)
    contrast = trait.folder / "sdf_contrast.jsonl"
    texts = [d.text for d in load_documents(trait.folder / "sdf_seed.jsonl")]
    targets = [1.0] * len(texts)
    if contrast.is_file():
        negatives = [d.text for d in load_documents(contrast)]
        texts += negatives
        targets += [0.0] * len(negatives)
    texts += [a.text for a in recipe.anchors]
    targets += [a.score / 100 for a in recipe.anchors]
    return texts, targets


def _judge_id(trait: TraitSpec, texts: list[str], targets: list[float]) -> str:
    return f"embedded-sdf/{trait.name}@v{trait.version}/{fit_digest(SDF_JUDGE_VERSION, texts, targets)}"


def embedded_sdf_judge_id(trait: TraitSpec) -> str:
    return _judge_id(trait, *_training_set(trait))


def embedded_sdf_judge(trait: TraitSpec, progress: Progress | None = None) -> Judge:
    """Build the no-network judge of documents for ``trait``'s belief; a fit shows its progress in ``progress``."""
    texts, targets = _training_set(trait)
    return classifier_judge(_judge_id(trait, texts, targets), texts, targets, progress)
