"""Interrupting a launched training (Ctrl-C, SIGTERM) stops its launcher and every worker: none outlives the run.

The training is real (``accelerate launch`` with two CPU processes on the tiny model, long enough to be
interrupted mid-way); the caller runs in a subprocess so it can be signalled like a user or a scheduler would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow  # launches and kills training processes
TESTS = Path(__file__).parent
CALLER = """
import sys
from pathlib import Path
from test_train import CONFIG, seeds
from test_train_launch import job, write_jsonl
from traitloop.methods import train_launched

model, folder = sys.argv[1], Path(sys.argv[2])
write_jsonl(folder / "train.jsonl", [c.model_dump() for c in seeds(8)])
config = CONFIG.model_copy(update={"processes": 2, "epochs": 1000})  # far longer than the test waits
train_launched(job("sft", model, folder / "train.jsonl", folder / "two", config), 2)
"""


def launched(job: Path) -> list[psutil.Process]:
    """The processes running ``job``: the launcher and its workers (each has the job file in its command line)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if str(job) in (process.info["cmdline"] or []):
            found.append(process)
    return found


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupting_a_launched_training_stops_every_worker(tiny_model, tmp_path, sent):
    job = tmp_path / "two.job.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    caller = subprocess.Popen([sys.executable, "-c", CALLER, str(tiny_model), str(tmp_path)], env=env)
    try:
        deadline = time.monotonic() + 120
        while len(launched(job)) < 3:  # the launcher and two workers
            assert caller.poll() is None, f"the training stopped by itself (exit {caller.returncode})"
            assert time.monotonic() < deadline, "the launched workers never started"
            time.sleep(0.2)
        time.sleep(1.0)  # past their start: the workers are loading the model or training
        caller.send_signal(sent)
        assert caller.wait(timeout=30) != 0
        left = [p for p in launched(job) if p.status() != psutil.STATUS_ZOMBIE]
        assert not left, f"still running when the run stopped: {[p.cmdline() for p in left]}"
    finally:
        if caller.poll() is None:
            caller.kill()
        for process in launched(job):  # so a failing test leaves nothing training
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
