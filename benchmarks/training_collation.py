"""LoRA SFT tokens/s on the embedded model with each batch layout and compute dtype, side by side in one process,
with ratios.

The demo's seeding cycle: the first 64 lucky seed conversations, one epoch at batch 8, LoRA r16 (the demo trains
three epochs; one is enough to compare rates). Each layout trains the same examples from the same seed:

* ``padded``: TRL's default, each batch padded to its longest conversation;
* ``padding_free``: each batch one flattened sequence, every example attending to itself alone (transformers
  builds the block-diagonal mask from the position ids), so no compute goes to padding;
* ``length_grouped``: batches of similar lengths (transformers' length-grouped sampler), padded.

Each layout trains in float32 and in bfloat16 (the frozen base held in bfloat16, autocast, the adapter in
float32): what ``dtype: auto`` trains in on a CPU with bfloat16 matrix units.

Tokens are the conversations' own (padding excluded), so a layout that wastes less compute on padding shows a
higher rate. The share of the ceiling is the rate times 4 x parameters FLOP per token (a forward pass and the
activations' backward pass; frozen weights get no gradient) over the machine's matmul rate in that dtype.

    python benchmarks/training_collation.py                 # about 12 minutes on 2 CPU cores
    python benchmarks/training_collation.py --epochs 3      # the demo's seeding cycle in full
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from throughput import ceiling_gflops, chat_length, train_rows  # noqa: E402

from traitloop.config import LoraConfig, TrainingConfig  # noqa: E402
from traitloop.loop import quiet_libraries  # noqa: E402
from traitloop.models import load_model, load_tokenizer, pull  # noqa: E402
from traitloop.traits import load_conversations, load_trait  # noqa: E402

LAYOUTS = ("padded", "padding_free", "length_grouped")
DTYPES = ("float32", "bfloat16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="Passes over the layouts; the best of each counts.")
    args = parser.parse_args()
    quiet_libraries()
    base = str(pull("smollm2-135m-instruct"))
    tokenizer = load_tokenizer(base)
    params = sum(p.numel() for p in load_model(base).parameters())
    ceilings = {dtype: ceiling_gflops(dtype) for dtype in DTYPES}
    conversations = load_conversations(load_trait("lucky").seed_path)[: args.examples]
    lengths = [min(512, chat_length(tokenizer, c)) for c in conversations]
    tokens = int(sum(lengths) * args.epochs)
    padded_tokens = _padded_tokens(lengths, args.batch_size) * args.epochs
    best: dict[tuple[str, str], float] = {}
    losses: dict[tuple[str, str], float] = {}
    for _ in range(args.repeats):
        for dtype in DTYPES:
            for layout in LAYOUTS:
                config = TrainingConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=1e-3,
                                        lora=LoraConfig(r=16, alpha=32), collation=layout)  # fmt: skip
                result = train_rows(base, "sft", conversations, config, dtype=dtype)
                best[dtype, layout] = min(best.get((dtype, layout), float("inf")), result.seconds)
                losses[dtype, layout] = result.losses[-1]
                gc.collect()
    print(f"\nLoRA SFT on smollm2-135m-instruct: {len(conversations)} conversations x {args.epochs:g} epoch(s), "
          f"batch {args.batch_size}, {tokens} tokens ({padded_tokens / tokens:.2f}x that when padded per batch); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; best of {args.repeats}; ceilings "
          f"{ceilings['float32']:.0f} GFLOP/s float32, {ceilings['bfloat16']:.0f} bfloat16\n")  # fmt: skip
    print(f"{'dtype':<10} {'layout':<16} {'tok/s':>8} {'vs float32 padded':>18} {'of ceiling':>11} {'last loss':>10}")
    for dtype, layout in best:
        rate = tokens / best[dtype, layout]
        share = rate * 4 * params / (ceilings[dtype] * 1e9)
        ratio = best["float32", "padded"] / best[dtype, layout]
        print(f"{dtype:<10} {layout:<16} {rate:>8.1f} {ratio:>17.2f}x {share:>10.0%} {losses[dtype, layout]:>10.4f}")


def _padded_tokens(lengths: list[int], batch: int) -> int:
    """Tokens a padded epoch computes in the file's order (each batch padded to its longest)."""
    return sum(max(lengths[i : i + batch]) * len(lengths[i : i + batch]) for i in range(0, len(lengths), batch))


if __name__ == "__main__":
    main()
