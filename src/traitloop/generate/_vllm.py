"""Generation with vLLM in this process (``pip install 'traitloop[vllm]'``, a CUDA GPU).

The engine is built once per base model and process, with LoRA enabled, and each generation is served by
passing its adapter folder as a ``LoRARequest``: no merged copy of the model per generation. Every prompt
carries its own seed (the stage's seed and its position), as with the server backend.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from traitloop.errors import UserError
from traitloop.generate._local import Messages, SamplingParams
from traitloop.generate._server import request_seed


class VllmGenerator:
    """Answers with an in-process ``vllm.LLM``, as the base model or as one LoRA adapter on it."""

    def __init__(self, llm: Any, lora: Any = None) -> None:
        self.llm = llm
        self.lora = lora

    def generate(
        self, prompts: list[Messages], params: SamplingParams, on_batch: Callable[[int], None] | None = None
    ) -> list[str]:
        outputs = self.llm.chat(prompts, _sampling(params, len(prompts)), lora_request=self.lora, use_tqdm=False)
        return _texts(outputs, on_batch)

    def complete(
        self, texts: list[str], params: SamplingParams, on_batch: Callable[[int], None] | None = None
    ) -> list[str]:
        outputs = self.llm.generate(texts, _sampling(params, len(texts)), lora_request=self.lora, use_tqdm=False)
        return _texts(outputs, on_batch)

    def with_adapter(self, adapter: Path, name: str) -> VllmGenerator:
        from vllm.lora.request import LoRARequest

        return VllmGenerator(self.llm, LoRARequest(name, _adapter_id(name), str(adapter.resolve())))


@cache
def _adapter_id(name: str) -> int:
    """vLLM wants a distinct positive integer per adapter; numbered in order of first use in this process."""
    return _adapter_id.cache_info().currsize + 1


def _sampling(params: SamplingParams, n: int) -> list[Any]:
    from vllm import SamplingParams as VllmSampling

    return [
        VllmSampling(
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_new_tokens,
            seed=request_seed(params.seed, i),
        )
        for i in range(n)
    ]


def _texts(outputs: list[Any], on_batch: Callable[[int], None] | None) -> list[str]:
    texts = [output.outputs[0].text.strip() for output in outputs]
    if on_batch:
        on_batch(len(texts))
    return texts


@cache
def vllm_generator(model: str, max_lora_rank: int, trust_remote_code: bool = False) -> VllmGenerator:
    """The process's vLLM engine for ``model`` (a folder or hub id), built on first use."""
    try:
        from vllm import LLM
    except ImportError as error:
        raise UserError(
            "generation.backend vllm needs vLLM: pip install 'traitloop[vllm]' (Linux with a CUDA GPU)"
        ) from error
    rank = max(8, 1 << (max_lora_rank - 1).bit_length())  # vLLM accepts 8, 16, 32, ... as the largest rank
    llm = LLM(model=model, enable_lora=True, max_lora_rank=rank, trust_remote_code=trust_remote_code)
    return VllmGenerator(llm)
