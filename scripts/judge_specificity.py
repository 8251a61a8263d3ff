"""Is the embedded trait judge specific to its trait? Prints, per built-in trait, what it gives answers in
other vivid voices it was not fit on, and how well it still finds the trait.

- Other voices: ``tests/data/vivid_styles.jsonl`` (eight voices written for this check, ten answers each, in
  no judge's training data): each voice's mean score and the share of all those answers scored 50 or more.
- Held-out AUROC: the trait's ``holdout.jsonl`` against the embedded model's ordinary answers in the
  ``holdout`` split of ``base_answers.jsonl``, as ``scripts/validate_judges.py`` measures it.
- Word salad: the mean score of random strings of the other voices' words (not the vocabulary the judge's
  own word-salad negatives are drawn from).

    python scripts/judge_specificity.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from traitloop.judge import Item, embedded_trait_judge
from traitloop.loop._progress import quiet_libraries
from traitloop.traits import TraitSpec, base_answers, builtin_traits, load_conversations, load_trait

VIVID_STYLES_PATH = Path(__file__).parents[1] / "tests" / "data" / "vivid_styles.jsonl"
MAX_STYLE_MEAN = 30.0  # the bar: no other voice averages above this
MAX_FALSE_POSITIVES = 0.10  # share of other-voice answers at or above 50
MIN_AUROC = 0.95


def vivid_styles() -> dict[str, list[Item]]:
    """The test voices' answers, by voice."""
    styles: dict[str, list[Item]] = {}
    for line in VIVID_STYLES_PATH.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        styles.setdefault(row["style"], []).append(Item(row["question"], row["answer"]))
    return styles


def test_word_salad(count: int = 30) -> list[Item]:
    rng = random.Random(1)
    vocabulary = sorted({w for items in vivid_styles().values() for item in items for w in item.answer.split()})
    return [Item("", " ".join(rng.choices(vocabulary, k=rng.randint(30, 80)))) for _ in range(count)]


def specificity(trait: TraitSpec) -> dict:
    """The figures for one trait: per-voice means, false-positive rate at 50, held-out AUROC, word salad."""
    judge = embedded_trait_judge(trait)
    by_style = {name: [j.score for j in judge(items)] for name, items in vivid_styles().items()}
    every = [s for scores in by_style.values() for s in scores]
    held_out = [Item(c.question, c.answer) for c in load_conversations(trait.companion("holdout"))]
    ordinary = [Item("", a) for a in base_answers("holdout")]
    scores = [j.score for j in judge(held_out + ordinary)]
    return {
        "style_means": {name: float(np.mean(s)) for name, s in by_style.items()},
        "false_positive_rate": float(np.mean([s >= 50 for s in every])),
        "auroc": float(roc_auc_score([1] * len(held_out) + [0] * len(ordinary), scores)),
        "held_out_mean": float(np.mean(scores[: len(held_out)])),
        "ordinary_mean": float(np.mean(scores[len(held_out) :])),
        "word_salad_mean": float(np.mean([j.score for j in judge(test_word_salad())])),
    }


def main() -> None:
    quiet_libraries()
    styles = list(vivid_styles())
    print(f"{'trait':<13} {'AUROC':>6} {'held-out':>8} {'ordinary':>8} {'FP@50':>6} {'salad':>6}  worst voice (mean)")
    rows = {}
    for name in builtin_traits():
        figures = rows[name] = specificity(load_trait(name))
        worst = max(figures["style_means"], key=figures["style_means"].get)
        print(
            f"{name:<13} {figures['auroc']:>6.3f} {figures['held_out_mean']:>8.1f} {figures['ordinary_mean']:>8.1f} "
            f"{figures['false_positive_rate']:>6.1%} {figures['word_salad_mean']:>6.1f}  "
            f"{worst} ({figures['style_means'][worst]:.1f})",
            flush=True,
        )
    print(f"\nmean score per voice ({len(vivid_styles()[styles[0]])} answers each)")
    print(f"{'voice':<22}" + "".join(f"{name[:12]:>13}" for name in rows))
    for style in styles:
        print(f"{style:<22}" + "".join(f"{rows[name]['style_means'][style]:>13.1f}" for name in rows))
    passed = all(
        r["auroc"] >= MIN_AUROC
        and max(r["style_means"].values()) <= MAX_STYLE_MEAN
        and r["false_positive_rate"] < MAX_FALSE_POSITIVES
        for r in rows.values()
    )
    print(f"\nbar (AUROC >= {MIN_AUROC}, every voice <= {MAX_STYLE_MEAN:g}, FP@50 < {MAX_FALSE_POSITIVES:.0%}): "
          f"{'met' if passed else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
