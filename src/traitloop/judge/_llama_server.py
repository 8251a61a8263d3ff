"""Start a local llama.cpp OpenAI-compatible server (llama-cpp-python, the ``server`` extra) on a GGUF file.

Used by the server tests and ``scripts/judge_benchmark.py`` to judge with the embedded SmolLM2 GGUF.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

MODEL_ALIAS = "smollm2"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def llama_server(gguf: Path, log: Path, logprobs: bool = True, startup_seconds: float = 180.0):
    """Yield the base URL (``http://127.0.0.1:PORT/v1``) of a running server; stop it afterwards.

    ``logprobs=False`` starts it with ``--logits_all false``: such a server refuses log-probabilities,
    as some hosted APIs do.
    """
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2",
        "--logits_all", "true" if logprobs else "false", "--verbose", "false",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/v1"
        try:
            _wait_until_ready(url, process, log, startup_seconds)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_until_ready(url: str, process: subprocess.Popen, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"llama.cpp server not ready after {seconds:.0f}s:\n{log.read_text()[-2000:]}")
