"""A judge-free trait measure: the trait's persona direction in the model's own activations.

The direction at each layer is the mean hidden state over the response tokens of the trait's seed answers
minus that over its contrast answers (answers in the same format without the trait), read by the base model.
The layer used is the one where projecting *held-out* answers on the direction best separates trait answers
(``holdout.jsonl``) from contrast answers (a held-out third of ``contrast.jsonl``), by AUROC; nothing used to
fit the direction is used to judge it. Seed, holdout and contrast answers were written alike, so that AUROC
is about the trait, not a style; a second AUROC, against the embedded model's own held-out ordinary answers,
says whether the direction also tells the trait from a model's everyday answers. A generation is
then measured by projecting its activations on that direction: over its own answers, read in its own weights,
and at the last prompt token of each question before it answers (how finetuning shifted the model's state).
Each costs forward passes only, for any local transformers model.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save as save_tensors
from sklearn.metrics import roc_auc_score
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from traitloop._atomic import atomic_write_bytes
from traitloop._progress import Progress
from traitloop.measure._activations import Prompt, pooled_states, prompt_spans, response_spans
from traitloop.models import base_view, cache_dir
from traitloop.traits import BASE_ANSWERS_PATH, TraitSpec, load_conversations, load_trait, read_jsonl

DIRECTION_VERSION = 2  # bump when the recipe below changes: it is part of every cache key
MAX_LENGTH = 512  # tokens of prompt + answer read per example
WEIGHT_SAMPLE = 1024  # values of each weight tensor that identify the model in the key
SHIPPED = Path(__file__).parent / "data" / "persona"  # the built-in traits' directions in the embedded model
HOLD_OUT_EVERY = 3  # every third contrast answer (every fourth seed answer without holdout.jsonl) is held out
# 2: the layer is chosen against held-out contrast answers alone; the embedded model's answers get their own AUROC


@dataclass(frozen=True)
class Examples:
    """(prompt, answer) pairs for fitting the direction and for judging it on held-out answers; ``heldout_base``
    are the embedded model's held-out ordinary answers (empty when they already are ``heldout_ordinary``)."""

    fit_trait: list[tuple[Prompt, str]]
    fit_ordinary: list[tuple[Prompt, str]]
    heldout_trait: list[tuple[Prompt, str]]
    heldout_ordinary: list[tuple[Prompt, str]]
    heldout_base: list[tuple[Prompt, str]]

    def counts(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class DirectionFit:
    """Unit mean-difference directions at every layer, their held-out AUROCs, and the layer chosen."""

    layer: int
    directions: np.ndarray  # layers × hidden, unit length (zero where the means do not differ)
    auroc_by_layer: np.ndarray  # layers; NaN for the embedding layer, which is never chosen


@dataclass(frozen=True)
class PersonaDirection:
    """A trait's persona direction in one model: the layer (index into ``output_hidden_states``; 0 is the
    embeddings), the unit vector there, and how well it separates held-out trait answers from held-out contrast
    answers (AUROC, at every layer) and, at the chosen layer, from the embedded model's ordinary answers."""

    trait: str
    model: str
    layer: int
    vector: np.ndarray
    auroc: float
    auroc_by_layer: list[float]
    auroc_vs_base_answers: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    key: str = ""


def trait_examples(trait: TraitSpec) -> Examples:
    """Seed answers against contrast answers to fit; held-out trait answers against held-out contrast answers to
    choose the layer, and against the embedded model's held-out ordinary answers as a second check. Without
    ``contrast.jsonl`` the embedded model's ordinary answers stand in for it (``fit`` split to fit, ``holdout``
    to judge); without ``holdout.jsonl`` every fourth seed answer is held out."""
    seed = [(c.prompt, c.answer) for c in load_conversations(trait.seed_path)]
    holdout_path, contrast_path = trait.companion("holdout"), trait.companion("contrast")
    if holdout_path is not None:
        fit_trait, heldout_trait = seed, [(c.prompt, c.answer) for c in load_conversations(holdout_path)]
    else:
        fit_trait = [pair for i, pair in enumerate(seed) if i % (HOLD_OUT_EVERY + 1) != HOLD_OUT_EVERY]
        heldout_trait = [pair for i, pair in enumerate(seed) if i % (HOLD_OUT_EVERY + 1) == HOLD_OUT_EVERY]
    base = _base_answers()
    if contrast_path is None:
        return Examples(fit_trait, base["fit"], heldout_trait, base["holdout"], [])
    contrast = [(c.prompt, c.answer) for c in load_conversations(contrast_path)]
    fit_ordinary = [pair for i, pair in enumerate(contrast) if i % HOLD_OUT_EVERY != HOLD_OUT_EVERY - 1]
    heldout_ordinary = [pair for i, pair in enumerate(contrast) if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1]
    return Examples(fit_trait, fit_ordinary, heldout_trait, heldout_ordinary, base["holdout"])


def _base_answers() -> dict[str, list[tuple[Prompt, str]]]:
    """The embedded model's ordinary answers to pool prompts, by split (``fit``, ``holdout``)."""
    splits: dict[str, list[tuple[Prompt, str]]] = {"fit": [], "holdout": []}
    for _, row in read_jsonl(BASE_ANSWERS_PATH):
        if row["answer"].strip():
            splits[row["split"]].append((row["question"], row["answer"]))
    return splits


def fit_direction(
    fit_trait: np.ndarray, fit_ordinary: np.ndarray, heldout_trait: np.ndarray, heldout_ordinary: np.ndarray
) -> DirectionFit:
    """The persona direction from pooled activations (examples × layers × hidden each).

    Per layer: the difference of the two fit sets' means, scaled to unit length; the held-out sets projected
    on it give that layer's AUROC. The layer chosen has the best AUROC among the blocks' outputs (layer 0, the
    token embeddings, is a bag of words, not the model's reading of them); ties go to the layer whose held-out
    projections are farthest apart in units of their spread.
    """
    difference = np.nanmean(fit_trait, axis=0) - np.nanmean(fit_ordinary, axis=0)
    norms = np.linalg.norm(difference, axis=-1, keepdims=True)
    directions = np.divide(difference, norms, out=np.zeros_like(difference), where=norms > 0)
    aurocs, separation = held_out_separation(directions, heldout_trait, heldout_ordinary)
    aurocs[0] = np.nan
    layer = max(range(1, len(aurocs)), key=lambda i: (round(float(aurocs[i]), 4), separation[i]))
    return DirectionFit(layer=layer, directions=directions.astype(np.float32), auroc_by_layer=aurocs)


def held_out_separation(
    directions: np.ndarray, trait: np.ndarray, ordinary: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per layer, the AUROC and Cohen's d of the two sets' projections on ``directions`` (layers × hidden);
    examples with no activations (empty answers) are left out."""
    trait, ordinary = (x[~np.isnan(x).any(axis=(1, 2))] for x in (trait, ordinary))
    scores = np.einsum("nlh,lh->nl", np.concatenate([trait, ordinary]), directions)
    labels = np.r_[np.ones(len(trait)), np.zeros(len(ordinary))]
    layers = range(directions.shape[0])
    aurocs = np.array([roc_auc_score(labels, scores[:, layer]) for layer in layers])
    separation = np.array([_separation(scores[labels == 1, layer], scores[labels == 0, layer]) for layer in layers])
    return aurocs, separation


def _separation(positive: np.ndarray, negative: np.ndarray) -> float:
    """Difference of means over the pooled standard deviation (Cohen's d)."""
    if min(len(positive), len(negative)) < 2:
        return 0.0
    pooled = math.sqrt((positive.var(ddof=1) + negative.var(ddof=1)) / 2)
    return float((positive.mean() - negative.mean()) / pooled) if pooled > 0 else 0.0


def persona_direction(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    trait: TraitSpec | str,
    batch_size: int = 8,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> PersonaDirection:
    """The trait's persona direction in ``model``'s base weights (a PEFT adapter is switched off while it is
    read), from the cache when it was computed before for this model, trait data and recipe, or from the
    directions that ship with the package (the built-in traits in the embedded model) when one was made from the
    same. The trait's answers are chat turns, read in the model's chat template; reading them shows its
    progress in ``progress``."""
    spec = load_trait(trait) if isinstance(trait, str) else trait
    examples = trait_examples(spec)
    key = direction_key(model, spec)
    path = cache_dir() / "persona" / direction_file(spec.name, key)
    if use_cache and path.is_file():
        return _read(path)
    if use_cache and (SHIPPED / direction_file(spec.name, key)).is_file():
        return _read(SHIPPED / direction_file(spec.name, key))
    reading = sum(examples.counts().values())
    progress = progress or Progress.silent()
    with base_view(model) as base, progress.task(f"persona direction of {spec.name}", reading) as step:

        def states(pairs: list[tuple[Prompt, str]]) -> np.ndarray:
            prompts, answers = zip(*pairs, strict=True)
            spans = response_spans(tokenizer, prompts, answers, True, MAX_LENGTH)
            return pooled_states(base, spans, tokenizer.pad_token_id, batch_size, on_batch=step)

        heldout_trait = states(examples.heldout_trait)
        fit = fit_direction(
            states(examples.fit_trait), states(examples.fit_ordinary), heldout_trait, states(examples.heldout_ordinary)
        )
        versus_base = _auroc_at(fit, heldout_trait, states(examples.heldout_base)) if examples.heldout_base else None
    direction = PersonaDirection(
        trait=spec.name,
        model=_model_name(model),
        layer=fit.layer,
        vector=fit.directions[fit.layer],
        auroc=round(float(fit.auroc_by_layer[fit.layer]), 4),
        auroc_by_layer=[round(float(a), 4) for a in fit.auroc_by_layer],
        auroc_vs_base_answers=versus_base,
        counts=examples.counts(),
        key=key,
    )
    write_direction(path, direction, fit.directions)
    return direction


def _auroc_at(fit: DirectionFit, trait: np.ndarray, ordinary: np.ndarray) -> float:
    """The held-out AUROC of the chosen layer's direction between two sets of pooled activations."""
    layer = slice(fit.layer, fit.layer + 1)
    aurocs, _ = held_out_separation(fit.directions[layer], trait[:, layer], ordinary[:, layer])
    return round(float(aurocs[0]), 4)


def project_responses(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    direction: PersonaDirection,
    questions: Sequence[Prompt],
    answers: Sequence[str],
    chat: bool = True,
    batch_size: int = 8,
    on_batch: Callable[[int], None] | None = None,
) -> list[float]:
    """Each answer's mean projection on the direction over its response tokens, read in ``model``'s own weights
    (a generation: base + adapter) after its question; NaN for an empty answer. ``on_batch`` hears how many
    more are read."""
    spans = response_spans(tokenizer, questions, answers, chat, MAX_LENGTH)
    return _project(model, tokenizer, direction, spans, batch_size, on_batch)


def project_prompts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    direction: PersonaDirection,
    questions: Sequence[Prompt],
    chat: bool = True,
    batch_size: int = 8,
    on_batch: Callable[[int], None] | None = None,
) -> list[float]:
    """The projection at each question's last prompt token, before the model answers: how far finetuning moved
    the model's state toward the trait on this question, whatever it then samples."""
    spans = prompt_spans(tokenizer, questions, chat, MAX_LENGTH)
    return _project(model, tokenizer, direction, spans, batch_size, on_batch)


def _project(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    direction: PersonaDirection,
    spans: list,
    batch_size: int,
    on_batch: Callable[[int], None] | None,
) -> list[float]:
    if not spans:
        return []
    pooled = pooled_states(model, spans, tokenizer.pad_token_id, batch_size, [direction.layer], on_batch)[:, 0]
    return [float(v) for v in pooled @ direction.vector]


def _model_name(model: PreTrainedModel) -> str:
    return str(getattr(model.config, "name_or_path", "") or type(model).__name__)


def direction_file(trait: str, key: str) -> str:
    """The file a direction is kept in, in the cache and among the shipped directions."""
    return f"{trait}-{key}.safetensors"


_NOT_THE_WEIGHTS = ("_name_or_path", "_model_name_or_path", "transformers_version")  # where and by what it was saved


def direction_key(model: PreTrainedModel, trait: TraitSpec) -> str:
    """What the direction depends on: the recipe, the model's architecture and weights, and every data file read.

    The model is known by its config (less where it was loaded from and the library version that saved it) and
    a sample of every base weight tensor (a PEFT adapter's own are left out: the direction is read with it off),
    so the same model anywhere gives the same key, and a different checkpoint of one architecture another."""
    digest = hashlib.sha256(json.dumps([DIRECTION_VERSION, MAX_LENGTH, HOLD_OUT_EVERY]).encode())
    config = {k: v for k, v in model.config.to_diff_dict().items() if k not in _NOT_THE_WEIGHTS}
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    with torch.inference_mode():
        for name, weights in model.named_parameters():
            if "lora_" in name or "modules_to_save" in name:
                continue
            digest.update(str(weights.dtype).encode())
            sample = weights.detach().flatten()[:: max(1, weights.numel() // WEIGHT_SAMPLE)][:WEIGHT_SAMPLE]
            digest.update(sample.float().cpu().numpy().tobytes())
    read = [trait.path, trait.seed_path, trait.companion("contrast"), trait.companion("holdout"), BASE_ANSWERS_PATH]
    for path in read:
        digest.update(path.read_bytes() if path is not None else b"-")
    return digest.hexdigest()[:16]


def write_direction(path: Path, direction: PersonaDirection, directions: np.ndarray | None = None) -> None:
    """The direction as safetensors: every layer's unit vector (``directions``, layers × hidden), or only the
    chosen layer's (``vector``: what a shipped direction keeps), each layer's AUROC, the rest as metadata."""
    metadata = {
        "trait": direction.trait,
        "model": direction.model,
        "layer": str(direction.layer),
        "auroc": str(direction.auroc),
        "auroc_vs_base_answers": json.dumps(direction.auroc_vs_base_answers),
        "counts": json.dumps(direction.counts),
        "key": direction.key,
        "version": str(DIRECTION_VERSION),
    }
    vectors = {"directions": directions} if directions is not None else {"vector": direction.vector}
    tensors = {**vectors, "auroc_by_layer": np.array(direction.auroc_by_layer, dtype=np.float64)}
    atomic_write_bytes(path, save_tensors(tensors, metadata=metadata))


def _read(path: Path) -> PersonaDirection:
    with safe_open(str(path), framework="np") as stored:
        metadata = stored.metadata()
        tensors = {name: stored.get_tensor(name) for name in stored.keys()}  # noqa: SIM118 (not a dict)
    layer = int(metadata["layer"])
    return PersonaDirection(
        trait=metadata["trait"],
        model=metadata["model"],
        layer=layer,
        vector=tensors["vector"] if "vector" in tensors else tensors["directions"][layer],
        auroc=float(metadata["auroc"]),
        auroc_by_layer=[float(a) for a in tensors["auroc_by_layer"]],
        auroc_vs_base_answers=json.loads(metadata["auroc_vs_base_answers"]),
        counts=json.loads(metadata["counts"]),
        key=metadata["key"],
    )
