"""Wall time of the Ray test grid (2x2 tiny-model runs) run sequentially vs. as Ray tasks on a local 2-CPU Ray.

    python scripts/bench_sweep_grid.py [--cycles 0] [--folder /tmp/bench-sweep]

Both sides run the same sweep file into fresh folders; the sequential side is ``--executor local`` (one run after
another in this process, torch using every core), the Ray side is ``--executor ray`` with one CPU and one torch
thread per run, Ray's own start-up included. Prints both times and their ratio.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from tiny_model import build_tiny_model  # noqa: E402

from traitloop.loop._progress import quiet_libraries  # noqa: E402
from traitloop.sweep import run_sweep  # noqa: E402


def grid_spec(model: Path, cycles: int) -> dict:
    """The 2x2 grid of tests/test_sweep_ray.py (without its deliberately broken run)."""
    base = {
        "trait": "lucky",
        "model": str(model),
        "cycles": cycles,
        "seed_examples": 8,
        "samples_per_cycle": 6,
        "generation": {"max_new_tokens": 12, "batch_size": 8},
        "training": {"epochs": 1, "batch_size": 4, "max_length": 128, "lora": {"r": 4, "alpha": 8}},
        "evaluation": {"eval_samples": 1, "max_new_tokens": 12, "bootstrap_resamples": 200},
    }
    grid = {"seed_examples": [4, 8], "seed": [0, 1]}
    return {"base": base, "grid": grid, "executor": {"ray": {"num_cpus": 2, "num_cpus_per_run": 1}}}


def timed_sweep(path: Path, executor: str, output: Path) -> float:
    shutil.rmtree(output, ignore_errors=True)
    started = time.perf_counter()
    outcomes = run_sweep(path, executor=executor, output=output)
    seconds = time.perf_counter() - started
    failed = [o for o in outcomes if o.status != "done"]
    if failed:
        raise SystemExit(f"{executor}: runs did not finish: {failed}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=0)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/bench-sweep"))
    args = parser.parse_args()
    quiet_libraries()
    model = args.folder / "tiny-model"
    if not (model / "config.json").is_file():
        build_tiny_model(model)
    path = args.folder / "grid.yaml"
    path.write_text(yaml.safe_dump(grid_spec(model, args.cycles), sort_keys=False))
    sequential = timed_sweep(path, "local", args.folder / "local")
    print(f"sequential: {sequential:.1f} s", flush=True)
    parallel = timed_sweep(path, "ray", args.folder / "ray")
    print(f"2x2 grid, cycles={args.cycles}: sequential {sequential:.1f} s, Ray (2 CPUs) {parallel:.1f} s")
    print(f"ratio sequential / Ray: {sequential / parallel:.2f}x")


if __name__ == "__main__":
    main()
