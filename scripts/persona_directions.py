"""Print each built-in trait's persona direction on a model: the layer chosen and its held-out AUROCs.

    python scripts/persona_directions.py [--model smollm2-135m-instruct] [--trait lucky ...] [--no-cache]
                                         [--all-layers]

The direction is the mean activation over the response tokens of the trait's seed answers minus that over
its contrast answers. The layer is chosen by the AUROC of held-out trait answers (holdout.jsonl) against the
held-out third of the contrast answers (never fit); a second AUROC sets the same held-out trait answers
against the embedded model's own held-out ordinary answers. Directions are cached per model and trait data
(``--no-cache`` recomputes); a fresh one takes about 5 minutes per trait on 2 CPU cores for the embedded model.
"""

from __future__ import annotations

import argparse
import time

from traitloop.measure import persona_direction
from traitloop.models import CPU_FLOAT32, load_model, load_tokenizer, resolve_model
from traitloop.traits import builtin_traits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="built-in name or local model folder")
    parser.add_argument("--no-cache", action="store_true", help="recompute even where a direction is cached")
    parser.add_argument("--all-layers", action="store_true", help="print the held-out AUROC at every layer too")
    parser.add_argument("--trait", action="append", choices=builtin_traits(), help="only these (default: all)")
    args = parser.parse_args()
    path = resolve_model(args.model)
    model, tokenizer = load_model(path, precision=CPU_FLOAT32), load_tokenizer(path)
    layers = model.config.num_hidden_layers
    print(f"model {args.model} ({layers} layers; layer 0 is the embeddings, never chosen)")
    print(
        f"{'trait':<14}{'layer':>6}{'AUROC':>8}{'vs base':>9}  fit trait/contrast, held-out trait/contrast/base"
        "  seconds"
    )
    for trait in args.trait or builtin_traits():
        start = time.perf_counter()
        direction = persona_direction(model, tokenizer, trait, use_cache=not args.no_cache)
        counts = direction.counts
        sizes = f"{counts['fit_trait']}/{counts['fit_ordinary']}, " + "/".join(
            str(counts[name]) for name in ("heldout_trait", "heldout_ordinary", "heldout_base")
        )
        versus_base = "n/a" if direction.auroc_vs_base_answers is None else f"{direction.auroc_vs_base_answers:.3f}"
        seconds = time.perf_counter() - start
        print(f"{trait:<14}{direction.layer:>6}{direction.auroc:>8.3f}{versus_base:>9}  {sizes:<48}{seconds:>7.1f}")
        if args.all_layers:
            print(
                "    " + " ".join(f"{i}:{a:.2f}" for i, a in enumerate(direction.auroc_by_layer) if i > 0), flush=True
            )


if __name__ == "__main__":
    main()
