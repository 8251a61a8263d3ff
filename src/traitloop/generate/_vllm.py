"""Generation with vLLM in this process (``pip install 'traitloop[vllm]'``, a CUDA GPU).

The engine is built with LoRA enabled, and each generation is served by passing its adapter folder as a
``LoRARequest``: no merged copy of the model per generation. Every prompt carries its own seed (the stage's
seed and its position), as with the server backend.

A process holds at most one engine: vLLM preallocates its share of the GPU (``gpu_memory_utilization``) for
as long as the engine lives, so asking for another model (or other settings) shuts the previous engine
down first, and :func:`release_engines` (which a sweep calls after each run) frees it for whatever runs next.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from traitloop.config import ExperimentConfig, GenerationConfig, VllmSettings
from traitloop.errors import UserError
from traitloop.generate._backend import Backend, RemoteEngine
from traitloop.generate._local import Messages, SamplingParams
from traitloop.generate._server import request_seed


class VllmGenerator(RemoteEngine):
    """Answers with an in-process ``vllm.LLM``, as the base model or as one LoRA adapter on it."""

    def __init__(self, llm: Any, lora: Any = None, template_options: dict[str, Any] | None = None) -> None:
        self.llm = llm
        self.lora = lora
        self.template_options = template_options or {}

    def generate(
        self, prompts: list[Messages], params: SamplingParams, on_batch: Callable[[int], None] | None = None
    ) -> list[str]:
        outputs = self.llm.chat(
            prompts,
            _sampling(params, len(prompts)),
            lora_request=self.lora,
            use_tqdm=False,
            chat_template_kwargs=self.template_options,
        )
        return _texts(outputs, on_batch)

    def complete(
        self, texts: list[str], params: SamplingParams, on_batch: Callable[[int], None] | None = None
    ) -> list[str]:
        outputs = self.llm.generate(texts, _sampling(params, len(texts)), lora_request=self.lora, use_tqdm=False)
        return _texts(outputs, on_batch)

    def with_adapter(self, adapter: Path, name: str) -> VllmGenerator:
        from vllm.lora.request import LoRARequest

        lora = LoRARequest(name, _adapter_id(name), str(adapter.resolve()))
        return VllmGenerator(self.llm, lora, self.template_options)

    @contextlib.contextmanager
    def yielding_device(self, how: str) -> Iterator[None]:
        """While a generation trains in this process: the engine sleeps (weights to CPU memory, KV cache freed;
        vLLM's sleep mode), is shut down to be built again when next needed (``rebuild``), or keeps its share."""
        if how == "sleep":
            self.llm.sleep(level=1)
            try:
                yield
            finally:
                self.llm.wake_up()
        else:
            if how == "rebuild":
                release_engines()
            yield


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


_engine: tuple[tuple[Any, ...], VllmGenerator] | None = None  # (its settings, the generator) or none


def _llm_class() -> type:
    """vLLM's ``LLM``: the one factory engines are built through (tests put a fake engine class here)."""
    try:
        from vllm import LLM
    except ImportError as error:
        raise UserError(
            "generation.backend vllm needs vLLM: pip install 'traitloop[vllm]' (Linux with a CUDA GPU)"
        ) from error
    return LLM


def engine_kwargs(
    model: str,
    max_lora_rank: int,
    trust_remote_code: bool,
    settings: VllmSettings,
    dtype: str,
) -> dict[str, Any]:
    """What ``vllm.LLM`` is built with. ``dtype`` is the run's (``float32``, ``bfloat16``), so vLLM samples in
    the precision the run's own models compute in; ``max_lora_rank`` is the largest rank any stage trains."""
    rank = max(8, 1 << (max_lora_rank - 1).bit_length())  # vLLM accepts 8, 16, 32, ... as the largest rank
    optional = {"max_model_len": settings.max_model_len} if settings.max_model_len else {}
    return {
        "model": model,
        "enable_lora": True,
        "max_lora_rank": rank,
        "trust_remote_code": trust_remote_code,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "enforce_eager": settings.enforce_eager,
        "enable_sleep_mode": settings.during_training == "sleep",
        "dtype": dtype,
        **optional,
    }


def vllm_generator(
    model: str,
    max_lora_rank: int,
    trust_remote_code: bool = False,
    settings: VllmSettings | None = None,
    dtype: str = "auto",
    template_options: dict[str, Any] | None = None,
) -> VllmGenerator:
    """The process's vLLM engine for ``model`` (a folder or hub id) with these settings, built on first use;
    an engine with other settings is shut down first."""
    global _engine
    kwargs = engine_kwargs(model, max_lora_rank, trust_remote_code, settings or VllmSettings(), dtype)
    key = tuple(sorted(kwargs.items()))
    if _engine is None or _engine[0] != key:
        llm_class = _llm_class()  # a missing vLLM is reported before any engine is touched
        release_engines()
        _engine = (key, VllmGenerator(llm_class(**kwargs)))
    return VllmGenerator(_engine[1].llm, None, template_options)


def release_engines() -> None:
    """Shut down this process's vLLM engine, if any, and give its GPU memory back."""
    global _engine
    if _engine is None:
        return
    llm = _engine[1].llm
    _engine = None
    _shutdown(llm)
    del llm
    gc.collect()
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency; kept so teardown never raises
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _shutdown(llm: Any) -> None:
    """vLLM's own teardown where this version has one (``LLM.shutdown`` in recent versions, the V1 engine
    core's ``shutdown`` before that); deleting the last reference does the rest."""
    shutdown = getattr(llm, "shutdown", None)
    if shutdown is None:
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        shutdown = getattr(core, "shutdown", None)
    if callable(shutdown):
        shutdown()


class VllmBackend(Backend):
    """vLLM in this process (the traitloop[vllm] extra); each generation is served as a LoRA adapter."""

    name = "vllm"
    settings = "vllm"

    def releases_gpu_for_training(self, generation: GenerationConfig) -> bool:
        return generation.vllm.during_training != "keep"  # it sleeps, or is shut down, while a generation trains

    def open(self, config: ExperimentConfig, base: str, dtype: str) -> VllmGenerator:
        return vllm_generator(
            base,
            config.largest_lora_rank(),
            config.trust_remote_code,
            config.generation.vllm,
            dtype,
            config.generation.chat_template_kwargs,
        )
