"""Generation backends behind one small interface: conversations (or raw texts) in, answer texts out.

``LocalGenerator`` runs a transformers model in this process (the default, and what runs on a laptop);
``ServerGenerator`` asks an OpenAI-compatible server; ``VllmGenerator`` runs vLLM in this process. The two
remote ones also answer as one generation's LoRA adapter (``with_adapter``). ``BACKENDS`` is the registry a
run's ``generation.backend`` names: a new backend is one module and one line here.

May import: config, io, errors, _http, models.
"""

from collections.abc import Callable
from typing import Any, Protocol

from traitloop.config import ExperimentConfig, GenerationConfig
from traitloop.generate._backend import Backend, Engine
from traitloop.generate._local import LocalBackend, LocalGenerator, Messages, SamplingParams
from traitloop.generate._server import GenerationRefused, ServerBackend, ServerGenerator, server_generator
from traitloop.generate._vllm import VllmBackend, VllmGenerator, release_engines, vllm_generator

BACKENDS: dict[str, Backend] = {backend.name: backend for backend in (LocalBackend(), ServerBackend(), VllmBackend())}


class Generator(Protocol):
    def generate(
        self, prompts: list[Messages], params: SamplingParams, on_batch: Callable[[int], None] | None = None
    ) -> list[str]:
        """One answer per conversation, in the prompts' order; ``on_batch(n)`` reports n more done."""
        ...

    def complete(
        self, texts: list[str], params: SamplingParams, on_batch: Callable[[int], None] | None = None
    ) -> list[str]:
        """One continuation per raw text (no chat template), in order."""
        ...


def get_backend(name: str) -> Backend:
    """The registered backend called ``name`` (``check_backend`` has checked the name)."""
    return BACKENDS[name]


def backend_sections() -> set[str]:
    """The fields of ``generation`` that say who samples rather than how: the backend and its settings."""
    return {"backend", *(b.settings for b in BACKENDS.values() if b.settings)}


def check_backend(config: ExperimentConfig) -> None:
    """Raise ``ValueError`` for a backend that does not exist, a backend's section set for another, or settings
    the chosen backend cannot use."""
    generation = config.generation
    if generation.backend not in BACKENDS:
        raise ValueError(f"unknown backend {generation.backend!r}; the backends are {', '.join(BACKENDS)}")
    backend = BACKENDS[generation.backend]
    for other in BACKENDS.values():
        section = other.settings
        if section and other is not backend and getattr(generation, section) != _default(section):
            raise ValueError(
                f"generation.{section} applies only with generation.backend: {other.name} (it is {backend.name})"
            )
    if backend.adapters_only and config.training.full_finetune:
        raise ValueError(
            f"generation.backend {backend.name} serves each generation as a LoRA adapter on the base model; drop "
            "training.full_finetune or use backend: local"
        )
    backend.check(config)


def _default(section: str) -> Any:
    return GenerationConfig.model_fields[section].get_default(call_default_factory=True)


__all__ = [
    "BACKENDS",
    "Backend",
    "Engine",
    "GenerationRefused",
    "Generator",
    "LocalGenerator",
    "Messages",
    "SamplingParams",
    "ServerGenerator",
    "VllmGenerator",
    "backend_sections",
    "check_backend",
    "get_backend",
    "release_engines",
    "server_generator",
    "vllm_generator",
]
