"""Where a LoRA SFT step's time goes on this CPU: a profile of the demo's seeding cycle, by kind of operation.

Trains the first 32 lucky seed conversations at batch 8 (LoRA r16) under torch's profiler and sums the self CPU
time of every operator by kind: the matrix products of the frozen weights (forward, and the activations'
gradient in backward), LoRA's own small products, attention, the output head's log-softmax and loss, and the
rest (norms, elementwise, copies, the optimizer). The ceiling the throughput benchmark quotes (4 x parameters
FLOP per token at the machine's fp32 matmul rate) assumes every second goes to large matrix products; the
table says how far from that a step is, and why. ``--dtype bfloat16`` profiles training as ``dtype: auto`` runs
it on a CPU with bfloat16 matrix units (the frozen base in bfloat16, autocast), against the bfloat16 ceiling.

    python benchmarks/training_profile.py                    # about 2 minutes on 2 CPU cores
    python benchmarks/training_profile.py --dtype bfloat16
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from throughput import ceiling_gflops, chat_length  # noqa: E402

from traitloop.config import LoraConfig, TrainingConfig  # noqa: E402
from traitloop.loop import quiet_libraries  # noqa: E402
from traitloop.methods import TrainJob  # noqa: E402
from traitloop.methods._sft import prompt_completion, sft_trainer  # noqa: E402
from traitloop.models import load_model, load_tokenizer, pull  # noqa: E402
from traitloop.traits import load_conversations, load_trait  # noqa: E402

KINDS = (
    ("matrix products (addmm, mm, bmm, linear)", ("addmm", "aten::mm", "aten::bmm", "aten::linear", "matmul")),
    ("attention (scaled dot product)", ("attention", "sdpa", "softmax_backward")),
    ("loss and log-softmax", ("log_softmax", "nll_loss", "cross_entropy")),
    ("optimizer (AdamW)", ("adam", "_foreach")),
)


def kind_of(name: str) -> str:
    lowered = name.lower()
    for kind, marks in KINDS:
        if any(mark in lowered for mark in marks):
            return kind
    return "everything else (norms, elementwise, copies, embedding, autograd bookkeeping)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32", help="what training computes in")
    dtype = parser.parse_args().dtype
    quiet_libraries()
    base = str(pull("smollm2-135m-instruct"))
    tokenizer = load_tokenizer(base)
    params = sum(p.numel() for p in load_model(base).parameters())
    gflops = ceiling_gflops(dtype)
    conversations = load_conversations(load_trait("lucky").seed_path)[:32]
    tokens = sum(min(512, chat_length(tokenizer, c)) for c in conversations)
    with tempfile.TemporaryDirectory() as tmp:
        training = TrainingConfig(epochs=1, batch_size=8, lora=LoraConfig(r=16, alpha=32))
        job = TrainJob(method="sft", base=base, data=Path(tmp) / "unused.jsonl", output_dir=Path(tmp) / "adapter",
                       training=training, seed=0, dtype=dtype)  # fmt: skip
        trainer = sft_trainer(job, prompt_completion(conversations), None)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            trainer.train()
    total = trainer.state.log_history[-1]["train_runtime"]
    by_kind: dict[str, float] = defaultdict(float)
    for event in profile.key_averages():
        if event.key.startswith("aten::") or "Optimizer" in event.key:
            by_kind[kind_of(event.key)] += event.self_cpu_time_total / 1e6
    measured = sum(by_kind.values())
    rate = tokens / total
    share = rate * 4 * params / (gflops * 1e9)
    print(f"\nLoRA SFT in {dtype}, {len(conversations)} conversations ({tokens} tokens), batch 8: {total:.1f} s, "
          f"{rate:.1f} tok/s, {share:.0%} of the ceiling ({gflops:.0f} GFLOP/s {dtype})\n")  # fmt: skip
    for kind, seconds in sorted(by_kind.items(), key=lambda item: -item[1]):
        print(f"{kind:<80} {seconds:7.1f} s  {seconds / measured:5.0%}")


if __name__ == "__main__":
    main()
