"""The Ray executor: a 2x2 grid of tiny-model runs as Ray tasks, and a broken run that does not stop the others."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
import yaml
from conftest import tiny_config

from traitloop.sweep import run_sweep, sweep_status


@pytest.mark.slow
def test_ray_runs_a_2x2_grid_on_a_local_ray_and_reports_the_broken_run(tiny_model, tmp_path):
    spec = {
        "base": tiny_config(tiny_model, cycles=0),
        "grid": {"seed_examples": [4, 8], "seed": [0, 1]},
        "include": [{"seed_examples": 500}],  # fails at run time: the trait has 160 seed conversations
        "executor": {"ray": {"num_cpus": 2, "num_cpus_per_run": 1}},
    }
    path, output = tmp_path / "grid.yaml", tmp_path / "sweep"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    outcomes = {o.name: o for o in run_sweep(path, executor="ray", output=output)}
    assert not ray.is_initialized()  # the local Ray traitloop started is shut down again
    grid = [f"seed_examples={n},seed={s}" for n in (4, 8) for s in (0, 1)]
    assert [outcomes[name].status for name in grid] == ["done"] * 4
    assert outcomes["seed_examples=500"].status == "failed"
    assert "seed_examples is 500 but" in outcomes["seed_examples=500"].error
    for name in grid:
        assert (output / "runs" / name / "summary.csv").is_file()
    entries = [p for p in (output / "shared").iterdir() if p.is_dir()]
    assert len(entries) == 2  # one base evaluation per seed (the seed sets its sampling), not one per run
    assert sorted(row["state"] for row in sweep_status(output)) == ["failed"] + ["finished"] * 4


def _wait_for_cluster(ray_cli: list[str], address: str, seconds: float, head: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start --head exited with {head.returncode}:\n{log.read_text()[-4000:]}")
        status = subprocess.run([*ray_cli, "status", f"--address={address}"], capture_output=True, text=True)
        if status.returncode == 0:
            return
        time.sleep(2)
    raise TimeoutError(f"no Ray cluster at {address} after {seconds} s; ray start said:\n{log.read_text()[-4000:]}"
                       f"\nray status said:\n{status.stdout[-2000:]}{status.stderr[-2000:]}")  # fmt: skip


@pytest.mark.slow
def test_ray_runs_on_an_existing_cluster_address(tmp_path):
    """Connects to a Ray started outside traitloop (``ray start --head``), which keeps running afterwards."""
    ray_cli, address = [sys.executable, "-m", "ray.scripts.scripts"], "127.0.0.1:6391"
    log = tmp_path / "ray-head.log"
    head = subprocess.Popen(
        [*ray_cli, "start", "--head", "--block", "--num-cpus=1", "--port=6391", "--include-dashboard=false"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so the test stops exactly the cluster it started
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},  # Ray 2.60's default token auth locks out `ray status`
    )
    try:
        _wait_for_cluster(ray_cli, address, 180, head, log)
        spec = {"base": {"trait": "lucky", "seed_examples": 500}, "grid": {"seed": [0]}}
        path = tmp_path / "grid.yaml"
        path.write_text(yaml.safe_dump(spec))
        (outcome,) = run_sweep(path, executor="ray", address=address, output=tmp_path / "sweep")
        assert outcome.status == "failed" and "seed_examples is 500 but" in outcome.error  # ran in a cluster worker
        assert not ray.is_initialized()
        _wait_for_cluster(ray_cli, address, 10, head, log)  # the cluster outlives the sweep
    finally:
        if head.poll() is None:
            os.killpg(head.pid, signal.SIGTERM)
            head.wait(timeout=60)
