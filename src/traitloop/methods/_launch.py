"""One generation's training on several processes (one per GPU) through ``accelerate launch``.

The loop itself stays in one process; only the train stage fans out. The stage's :class:`TrainJob` is written to
a job file, ``accelerate launch`` starts ``training.processes`` copies of this module, each reads the same job,
and the trainer (TRL over transformers' Trainer, which runs on accelerate) trains data-parallel: each
process takes ``batch_size / processes`` of every batch and the gradients are averaged, so a step sees the
same global batch as on one process. Rank 0 saves the weights and writes the result; its progress lines are
relayed to the caller's ``on_step``.

    python -m traitloop.methods._launch JOB.json      # what each launched process runs
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import torch

from traitloop._atomic import atomic_write_text
from traitloop.errors import UserError
from traitloop.methods._train import OnStep, TrainJob, TrainResult, rank

STEP_MARK = "traitloop-step"


def train_launched(
    job: TrainJob, processes: int, on_step: OnStep | None = None, log: Path | None = None
) -> TrainResult:
    """Train ``job`` through ``accelerate launch`` with ``processes`` processes: GPUs when CUDA is there, else
    CPU processes talking over gloo. The launcher's output goes to ``log`` (by default next to the weights), and
    a failure raises a UserError with the worker's error."""
    output_dir = job.output_dir
    job_file = output_dir.with_name(output_dir.name + ".job.json")
    result_file = job_file.with_suffix(".result.json")
    result_file.unlink(missing_ok=True)
    atomic_write_text(job_file, json.dumps({"job": job.model_dump(mode="json"), "result": str(result_file)}, indent=1))
    log = log or output_dir.with_name(output_dir.name + ".launch.log")
    _run_launcher(_launch_command(processes, job_file), processes, log, on_step)
    result = TrainResult(**json.loads(result_file.read_text()))
    job_file.unlink()
    result_file.unlink()
    return result


def _launch_command(processes: int, job: Path) -> list[str]:
    """``accelerate launch``'s multi-process launcher (torch's elastic launcher underneath) works for CPU
    processes as well as GPUs; the trainer picks NCCL or gloo from the device."""
    return [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_machines", "1", "--num_processes", str(processes),
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
        "-m", "traitloop.methods._launch", str(job),
    ]  # fmt: skip


def _run_launcher(command: list[str], processes: int, log: Path, on_step: OnStep | None) -> None:
    """Run the launcher, its output to ``log`` except rank 0's step lines. This process's torch threads
    (its share of the machine, e.g. a Ray task's CPUs) are split among the launched processes. If this process
    is interrupted (Ctrl-C, SIGTERM, any error) the launcher and every worker are stopped before it goes on."""
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, torch.get_num_threads() // processes))}
    # Its own session: a terminal's Ctrl-C reaches this process only, which then stops the launch in order.
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    try:
        with _sigterm_raises(), log.open("w") as out:
            for line in process.stdout:
                if line.startswith(STEP_MARK):
                    if on_step:
                        on_step(*map(int, line.split()[1:3]))
                else:
                    out.write(line)
                    out.flush()
            process.wait()
    except BaseException:
        _stop_launch(process)
        raise
    finally:
        process.stdout.close()
    if process.returncode != 0:
        raise UserError(
            f"training through accelerate launch failed (exit {process.returncode}): "
            f"{_worker_error(log.read_text())}\nthe launcher's whole output: {log}"
        )


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises SystemExit while the launch runs, so it is stopped; Python's default would end this process
    at once and leave the workers training. A handler someone else set (or a thread not the main) is left as is."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def terminated(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop_launch(process: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the launcher and every process under it, then SIGKILL whatever is left after ``grace`` seconds.
    The workers are listed before anything is signalled: torch's launcher starts each in a session of its own
    (so they are not in the launcher's process group), and a worker whose launcher died no longer shows it as
    its parent."""
    try:
        launcher = psutil.Process(process.pid)
        tree = [launcher, *launcher.children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    for member in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.terminate()
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(alive, timeout=grace)
    process.wait()


def _worker_error(output: str) -> str:
    """The exception a training process died of, not the launcher's own report of its child failing."""
    errors = [
        line
        for line in output.splitlines()
        if re.match(r"^[\w.]+(Error|Exception)\b", line) and not line.startswith(("torch.distributed", "subprocess"))
    ]
    return errors[-1] if errors else "no error line in the output"


def _print_step(step: int, total: int) -> None:
    print(f"{STEP_MARK} {step} {total}", flush=True)


def main(job_path: str) -> None:
    """Run one launched process's share of the job; rank 0 writes the result."""
    from traitloop.methods import train_job  # the registry imports this module

    spec = json.loads(Path(job_path).read_text())
    result = train_job(TrainJob.model_validate(spec["job"]), on_step=_print_step if rank() == 0 else None)
    if rank() == 0:
        Path(spec["result"]).write_text(json.dumps(dataclasses.asdict(result)))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
