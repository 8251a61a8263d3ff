"""Generation backends behind one small interface: conversations (or raw texts) in, answer texts out.

``LocalGenerator`` runs a transformers model in this process (the default, and what runs on a laptop);
``ServerGenerator`` asks an OpenAI-compatible server; ``VllmGenerator`` runs vLLM in this process. The two
remote ones also answer as one generation's LoRA adapter (``with_adapter``).
"""

from collections.abc import Callable
from typing import Protocol

from traitloop.generate._local import LocalGenerator, Messages, SamplingParams
from traitloop.generate._server import GenerationRefused, ServerGenerator, server_generator
from traitloop.generate._vllm import VllmGenerator, release_engines, vllm_generator


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


__all__ = [
    "GenerationRefused",
    "Generator",
    "LocalGenerator",
    "Messages",
    "SamplingParams",
    "ServerGenerator",
    "VllmGenerator",
    "release_engines",
    "server_generator",
    "vllm_generator",
]
