"""What a generation backend is to the rest of traitloop: a name, its settings section, how it is opened for a
run, and what a stage that samples through it records. Each backend is one module of this package with one
line in the registry (``traitloop.generate.BACKENDS``); nothing outside the registry branches on a backend.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar, Protocol

from traitloop.config import ExperimentConfig, GenerationConfig


class Engine(Protocol):
    """A backend opened for one run: it answers as the base model or as one generation's weights."""

    in_process: bool  # samples with the caller's loaded model (which must then hold the generation's weights)

    def generator(self, model: Any, tokenizer: Any, weights: Path | None, name: str) -> Any:
        """Who answers as the generation whose weights are ``weights`` (None: the base model). ``model`` holds
        those weights already when the backend samples in this process; remote ones load the adapter by
        ``name`` (derived from its contents) themselves."""
        ...

    def hold(self, model: Any, adapter: Path, name: str) -> None:
        """Make ``model`` answer as ``adapter`` (loaded beside its own as ``name``) where this backend samples
        with the caller's model; a remote backend loads adapters itself and ignores this."""
        ...

    def yielding_device(self, how: str) -> AbstractContextManager[None]:
        """Hands the GPU memory this engine holds to a training stage for the ``with`` block (``how``:
        ``generation.vllm.during_training``); an engine that holds none does nothing."""
        ...


class Backend:
    """A generation backend. Subclasses set ``name`` and ``settings`` and implement :meth:`open`."""

    name: ClassVar[str]
    settings: ClassVar[str | None] = None  # its own section under ``generation`` (server, vllm), if any
    adapters_only: ClassVar[bool] = True  # serves each generation as a LoRA adapter on the base model

    def gpu_share(self, generation: GenerationConfig) -> float:
        """The share of the GPU's memory this backend's engine takes in the run's process for as long as it
        lives: its settings section's ``gpu_memory_utilization`` (vLLM's), else none (it samples with the run's
        own model, or on a server elsewhere). What ``traitloop plan`` counts for it."""
        section = getattr(generation, self.settings) if self.settings else None
        return float(getattr(section, "gpu_memory_utilization", 0.0))

    def releases_gpu_for_training(self, generation: GenerationConfig) -> bool:
        """Whether its engine gives its GPU memory back while a generation trains (what the plan counts)."""
        return False

    def check(self, config: ExperimentConfig) -> None:
        """Raise ``ValueError`` for settings this backend cannot use (beyond the registry's own checks)."""

    def inputs(self, generation: GenerationConfig) -> dict[str, Any]:
        """Who samples, as a stage that samples through this backend records it: the backend's name (and what
        it serves); empty for the local default, so runs made before backends existed stay current."""
        return {"backend": self.name}

    def open(self, config: ExperimentConfig, base: str, dtype: str) -> Engine:
        """This backend for a run of ``config`` on the base model ``base`` (resolved), computing in ``dtype``."""
        raise NotImplementedError


class RemoteEngine:
    """An engine that loads each generation's adapter itself (vLLM in this process, or a server)."""

    in_process = False

    def generator(self, model: Any, tokenizer: Any, weights: Path | None, name: str) -> Any:
        return self if weights is None else self.with_adapter(weights, name)  # type: ignore[attr-defined]

    def hold(self, model: Any, adapter: Path, name: str) -> None:
        return None

    def yielding_device(self, how: str) -> AbstractContextManager[None]:
        return contextlib.nullcontext()
