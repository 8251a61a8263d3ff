"""How close is ``traitloop plan``'s training-stage memory estimate to what training really holds?

Trains generation 0 of a config (by default the demo, ``examples/lucky-sft.yaml``, on the embedded
SmolLM2-135M-Instruct, on the CPU in float32) for a few steps under torch's profiler with ``profile_memory``,
and takes the peak of the running sum of every tensor allocation and free the profiler recorded: the most
tensor memory held at once during the stage (weights, adapter, optimizer state, activations, temporaries).
Not the process's RSS, which counts the libraries and the allocator's caches too. Then prints the plan's
estimate for the same stage beside it.

    python benchmarks/plan_memory.py                                 # the demo's settings, 2 steps (a minute)
    python benchmarks/plan_memory.py --set training.batch_size=4     # any override of the config
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from traitloop._atomic import write_jsonl
from traitloop.api import load_config
from traitloop.loop import plan_run, quiet_libraries
from traitloop.methods import TrainJob, get_method
from traitloop.models import resolve_model
from traitloop.traits import load_conversations, load_trait

DEMO = Path(__file__).resolve().parents[1] / "examples" / "lucky-sft.yaml"
# Two optimizer steps of the demo's batch: enough for the peak (the first step allocates the optimizer state),
# short enough to profile in a minute. The plan is made for the same, shortened, config.
SHORT = ["seed_examples=16", "training.epochs=1", "device=cpu"]


def peak_tensor_bytes(prof: profile) -> int:
    """The most tensor memory held at once while profiling: the peak of the running sum of the CPU
    allocations (positive) and frees (negative) the profiler recorded, in time order."""
    events = sorted(
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU
    )
    held = peak = 0
    for _, change in events:
        held += change
        peak = max(peak, held)
    return peak


def measure_seed_training(config, folder: Path) -> int:
    """Train ``config``'s generation 0 in this process, on the CPU, under the profiler; its peak tensor bytes."""
    base = resolve_model(config.model)
    rows = [{**c.model_dump(), "source": "seed"} for c in load_conversations(load_trait(config.trait).seed_path)]
    data = folder / "train.jsonl"
    write_jsonl(data, rows[: config.seed_examples])
    method = get_method(config.method).for_cycle(config, 0)
    job = TrainJob(
        method=method.name, base=base, data=data, output_dir=folder / "adapter", training=config.training_for(0),
        seed=0, device="cpu", dtype="float32",
    )  # fmt: skip
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        method.train(job)
    return peak_tensor_bytes(prof)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", type=Path, default=DEMO)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="a config override")
    args = parser.parse_args()
    quiet_libraries()
    config = load_config(args.config, SHORT + args.overrides)
    stage = next(s for s in plan_run(config).stages if s.stage == "cycle_000/train")
    with tempfile.TemporaryDirectory() as folder:
        measured = measure_seed_training(config, Path(folder))
    print(f"{stage.stage}: {stage.micro_batch} x {stage.sequence_length} tokens")
    for item in stage.memory:
        print(f"  {item.name:<40} {item.bytes / 2**20:10.1f} MiB")
    print(f"estimated {stage.peak / 2**20:.1f} MiB, measured {measured / 2**20:.1f} MiB "
          f"({stage.peak / measured - 1:+.1%})")  # fmt: skip


if __name__ == "__main__":
    main()
