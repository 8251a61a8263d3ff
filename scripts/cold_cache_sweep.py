"""A 4-run local Ray sweep on the embedded model, all four runs starting at once from a cold cache, checked
against the same four runs made one after another in this process.

    python scripts/cold_cache_sweep.py [--folder /tmp/cold-sweep]

Both sweeps get a fresh, empty ``TRAITLOOP_CACHE`` of their own, so the model conversion and the judge fit happen
during the sweep (the Ray sweep warms them once, then fans out; the runs' own publishing is what
tests/test_cache_concurrency.py races). A run is correct when it finished and its summary.csv is the same as the
sequential run's (both use one torch thread per run, so they do the same arithmetic). Prints each run's state,
the wall times and whatever either cache kept beyond its results.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

BASE = {
    "trait": "lucky",
    "cycles": 1,
    "seed_examples": 4,
    "samples_per_cycle": 4,
    "generation": {"max_new_tokens": 16},
    "training": {"epochs": 1, "batch_size": 4},
    "evaluation": {"eval_samples": 1, "max_new_tokens": 16},
}


def sweep(folder: Path, executor: str) -> float:
    """Run the 4-seed sweep with ``executor`` into ``folder/sweep`` with a cache of its own; its wall seconds."""
    spec = {"base": BASE, "grid": {"seed": [0, 1, 2, 3]}, "executor": {"ray": {"num_cpus": 4, "num_cpus_per_run": 1}}}
    folder.mkdir(parents=True)
    (folder / "sweep.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {**os.environ, "TRAITLOOP_CACHE": str(folder / "cache")}
    if executor == "local":  # one torch thread, as each Ray task has: the same arithmetic, so the same samples
        env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "traitloop", "sweep", str(folder / "sweep.yaml"), "--executor", executor,
               "--output", str(folder / "sweep")]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
    return seconds


def leftovers(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob(".*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/cold-sweep"))
    folder = parser.parse_args().folder
    shutil.rmtree(folder, ignore_errors=True)
    ray_seconds = sweep(folder / "ray", "ray")
    local_seconds = sweep(folder / "local", "local")
    correct = 0
    for seed in range(4):
        name = f"seed={seed}"
        ray_run, local_run = (folder / side / "sweep" / "runs" / name for side in ("ray", "local"))
        same = (ray_run / "summary.csv").is_file() and (ray_run / "summary.csv").read_text() == (
            local_run / "summary.csv"
        ).read_text()
        correct += same
        print(f"{name}: {'finished, the same summary as alone' if same else 'WRONG OR UNFINISHED'}")
    print(f"{correct}/4 runs correct")
    print(
        f"wall time: ray (4 at once, cold cache) {ray_seconds:.0f} s, local (one after another) {local_seconds:.0f} s"
    )
    for side in ("ray", "local"):
        print(f"{side} cache leftovers (temporaries, staging): {leftovers(folder / side / 'cache') or 'none'}")


if __name__ == "__main__":
    main()
