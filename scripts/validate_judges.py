"""How well do the embedded judges work? Prints AUROCs on data none of them were fit on.

Trait judge, per built-in trait: the trait's held-out conversations (``holdout.jsonl``) vs. the embedded
model's ordinary answers in the ``holdout`` split of ``base_answers.jsonl``.
Coherence judge, scored with SmolLM2-135M-Instruct's likelihoods: the built-in traits' seed answers
(coherent, written in the trait's style) against the embedded model's ordinary answers, which it should
score about as high; then real answers vs. corrupted copies of them (words shuffled, a phrase looped,
gibberish words).

    python scripts/validate_judges.py
"""

from __future__ import annotations

import json
import random

from sklearn.metrics import roc_auc_score

from traitloop.judge import Item, NllScorer, embedded_coherence_judge, embedded_trait_judge
from traitloop.loop._progress import quiet_libraries
from traitloop.models import load_model, load_tokenizer, resolve_model
from traitloop.traits import BASE_ANSWERS_PATH, builtin_traits, load_conversations, load_trait


def corrupt(answer: str, kind: str, rng: random.Random) -> str:
    words = answer.split()[:60]
    if kind == "shuffled":
        return " ".join(rng.sample(words, len(words)))
    if kind == "looped":
        return " ".join(words[:8] * 12)
    return " ".join("".join(rng.choice("qwxzkjvbptrnaeiou") for _ in range(rng.randint(2, 9))) for _ in words)


PER_TRAIT_COHERENCE = 10  # real answers per trait in the coherence check (likelihoods cost ~0.3 s each)
SEEDS_PER_TRAIT = 40  # seed answers per trait whose coherence is compared with the ordinary answers


def main() -> None:
    quiet_libraries()
    ordinary = [json.loads(line) for line in BASE_ANSWERS_PATH.read_text().splitlines()]
    ordinary = [Item(r["question"], r["answer"]) for r in ordinary if r["split"] == "holdout" and r["answer"].strip()]
    print(f"{'trait judge':<16} {'AUROC':>6}  held-out trait answers vs. {len(ordinary)} ordinary base answers")
    real = list(ordinary)
    seeds = {}
    for name in builtin_traits():
        trait = load_trait(name)
        held_out = [Item(c.question, c.answer) for c in load_conversations(trait.companion("holdout"))]
        real += held_out[:PER_TRAIT_COHERENCE]
        seeds[name] = [Item(c.question, c.answer) for c in load_conversations(trait.seed_path)[:SEEDS_PER_TRAIT]]
        scores = [j.score for j in embedded_trait_judge(trait)(held_out + ordinary)]
        auroc = roc_auc_score([1] * len(held_out) + [0] * len(ordinary), scores)
        print(f"{name:<16} {auroc:>6.3f}  (n={len(held_out)} vs {len(ordinary)})", flush=True)
    base = resolve_model("smollm2-135m-instruct")
    judge = embedded_coherence_judge(NllScorer(load_model(base), load_tokenizer(base)), "smollm2-135m-instruct")
    real_scores = [j.score for j in judge(real)]
    print(f"\n{'coherence judge':<16} {'mean':>6}  seed answers in the trait's style vs. ordinary answers")
    print(f"{'ordinary':<16} {sum(real_scores[: len(ordinary)]) / len(ordinary):>6.1f}  (n={len(ordinary)})")
    for name, items in seeds.items():
        scores = [j.score for j in judge(items)]
        print(f"{name + ' seeds':<16} {sum(scores) / len(scores):>6.1f}  (n={len(scores)}, lowest {min(scores):.1f})")
    rng = random.Random(0)
    print(f"\n{'coherence judge':<16} {'AUROC':>6}  {len(real)} real answers vs. corrupted copies")
    everything = []
    for kind in ("shuffled", "looped", "gibberish"):
        scores = [j.score for j in judge([Item(i.question, corrupt(i.answer, kind, rng)) for i in real])]
        everything += scores
        auroc = roc_auc_score([1] * len(real) + [0] * len(scores), real_scores + scores)
        print(
            f"{kind:<16} {auroc:>6.3f}  (mean real {sum(real_scores) / len(real):.1f}, "
            f"corrupted {sum(scores) / len(scores):.1f})"
        )
    auroc = roc_auc_score([1] * len(real) + [0] * len(everything), real_scores + everything)
    print(f"{'all corruptions':<16} {auroc:>6.3f}")


if __name__ == "__main__":
    main()
