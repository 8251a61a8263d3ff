"""Executors: run a sweep's runs one after another in this process, or as Ray tasks on a local or remote cluster.

Either way a run is one call of ``traitloop.run`` (which resumes an unfinished run folder), its output goes to
its own log file, and a run that fails becomes a ``failed`` outcome with the error, never an exception that
stops the other runs.
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from traitloop.errors import UserError
from traitloop.sweep._spec import RayOptions

Status = Literal["done", "failed", "skipped"]


@dataclass(frozen=True)
class RunJob:
    """What a worker needs to run one run: plain data, so it travels to a Ray worker as it is."""

    name: str
    config: dict[str, Any]
    folder: Path
    log: Path
    threads: int | None = None
    shared: Path | None = None  # the sweep's store of shared stages (its base evaluation)


@dataclass(frozen=True)
class RunOutcome:
    name: str
    status: Status
    seconds: float = 0.0
    error: str | None = None


def _describe(error: BaseException) -> str:
    return str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"


def execute_run(job: RunJob) -> RunOutcome:
    """Run (or resume) one run, logging to its log file; any error becomes a ``failed`` outcome."""
    import torch

    from traitloop.config import parse_config
    from traitloop.generate import release_engines
    from traitloop.loop import run_experiment

    if job.threads:
        torch.set_num_threads(job.threads)  # a Ray worker gets the CPUs its task reserved, not the whole node
    started = time.perf_counter()
    job.log.parent.mkdir(parents=True, exist_ok=True)
    with job.log.open("a", encoding="utf-8") as log:
        console = Console(file=log, width=120, force_terminal=False, force_interactive=False)
        try:
            run_experiment(parse_config(job.config, job.name), job.folder, console=console, shared=job.shared)
        except Exception as error:  # one failed run must not stop the sweep; the log has the traceback
            log.write(traceback.format_exc())
            return RunOutcome(job.name, "failed", round(time.perf_counter() - started, 1), _describe(error))
        finally:
            release_engines()  # a vLLM engine holds its GPU share until released: the next run may need it
    return RunOutcome(job.name, "done", round(time.perf_counter() - started, 1))


def run_local(jobs: list[RunJob], on_outcome: Callable[[RunOutcome], None]) -> None:
    """One run after another, in this process."""
    for job in jobs:
        on_outcome(execute_run(job))


def _start_ray(options: RayOptions):
    try:
        import ray
    except ImportError:
        raise UserError("the Ray executor needs Ray: pip install 'traitloop[ray]'") from None
    if ray.is_initialized():
        return ray, False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if options.address:
        ray.init(address=options.address, log_to_driver=False)
    else:
        # "local" starts a fresh Ray even where another one was started on this machine before. The object store
        # only carries run configs and outcomes; a small one starts fast and leaves the memory to the runs.
        ray.init(
            address="local",
            num_cpus=options.num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=200 * 2**20,
        )
    return ray, True


def run_ray(jobs: list[RunJob], options: RayOptions, on_outcome: Callable[[RunOutcome], None]) -> None:
    """Every run is a Ray task reserving ``num_cpus_per_run`` CPUs and ``num_gpus_per_run`` GPUs.

    Outcomes are reported as tasks finish. A task whose worker dies (out of memory, node lost) is reported as
    failed like a run that raised; it is not retried, since re-running the sweep resumes it.
    """
    if not jobs:
        return
    ray, started_here = _start_ray(options)
    try:
        gpus = options.gpus_per_run(ray.cluster_resources().get("GPU", 0.0))
        check_processes_fit(jobs, gpus)
        task = ray.remote(num_cpus=options.num_cpus_per_run, num_gpus=gpus, max_retries=0)(execute_run)
        threads = max(1, round(options.num_cpus_per_run))
        pending = {task.remote(_with_threads(job, threads)): job for job in jobs}
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready)
            try:
                outcome = ray.get(ready)
            except ray.exceptions.RayError as error:
                outcome = RunOutcome(job.name, "failed", error=f"Ray task failed: {type(error).__name__}: {error}")
            on_outcome(outcome)
    finally:
        if started_here:
            ray.shutdown()


def check_processes_fit(jobs: list[RunJob], gpus_per_run: float) -> None:
    """Refuse a run whose training launches more processes (one per GPU) than the GPUs it reserves: they would
    share GPUs the scheduler thinks are free, or land on GPUs reserved by other runs."""
    for job in jobs:
        processes = job.config.get("training", {}).get("processes", 1)
        if gpus_per_run > 0 and processes > gpus_per_run:
            raise UserError(
                f"run {job.name}: training.processes is {processes} but each run reserves {gpus_per_run:g} GPUs "
                f"(executor.ray.num_gpus_per_run); set num_gpus_per_run to at least {processes}"
            )


def _with_threads(job: RunJob, threads: int) -> RunJob:
    return dataclasses.replace(job, threads=threads)
