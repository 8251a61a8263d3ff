"""Batched generation with a local transformers model.

Prompts are sorted by length so each batch pads little, and the model is loaded once by the caller and
reused for every batch, with the KV cache; the prefix every prompt of a batch shares (the chat template's
system turn) is run through the model once per batch, not once per prompt; on CPU the linear layers run
through oneDNN with weights packed once per call (``_packed.py``). Each batch is sampled with its own
generator, seeded from the stage's seed and the batch's index, so a stage re-run after a kill samples
exactly the same answers (on the same kind of device: a GPU's generator draws other numbers than a CPU's).
Every tensor of a batch, the sampler's draws included, lives on the model's device.

Sampling is done by :class:`SeededSampler`, not by transformers' warpers and multinomial draw: on CPU, the
top-p warper's sort of the whole vocabulary and the multinomial's one random variate per vocabulary entry
cost a third of the generation time for SmolLM2's 49k-token vocabulary (``benchmarks/throughput.py``
compares the two).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    DynamicCache,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from traitloop.config import ExperimentConfig, GenerationConfig
from traitloop.generate._backend import Backend
from traitloop.generate._packed import packed_linears

Messages = list[dict[str, str]]
SHARED_PREFIX_MIN = 8  # tokens: a shorter common prefix is not worth its own forward pass


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 160
    batch_size: int = 16
    seed: int = 0


class TemperatureNucleus(LogitsProcessor):
    """Temperature, then top-p: the same tokens survive as with transformers' warpers, mostly without a sort.

    A token is kept when the probability mass of the tokens ranked above it is below ``top_p``. When the
    k most likely tokens already hold ``top_p`` of the mass, every kept token is among them, so a top-k
    replaces the sort of the whole vocabulary. Rows are tried with each k of ``candidates`` in turn; only
    rows that no k covers are sorted whole. At temperature 1 and top-p 0.95 on the embedded model, a fifth
    of the rows need more than the top 256 and almost none more than the top 4096.
    """

    def __init__(self, temperature: float, top_p: float, candidates: tuple[int, ...] = (256, 4096)) -> None:
        self.temperature, self.top_p, self.candidates = temperature, top_p, candidates

    def __call__(self, input_ids: torch.LongTensor | None, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores / self.temperature
        if self.top_p >= 1.0:
            return scores
        probs = scores.softmax(-1)
        kept = torch.empty_like(scores)
        rows = torch.arange(scores.shape[0], device=scores.device)
        vocabulary = scores.shape[-1]
        for k in [min(k, vocabulary) for k in self.candidates] + [vocabulary]:
            top, indices = probs[rows].topk(k, dim=-1)
            covered = top.sum(-1) >= self.top_p if k < vocabulary else torch.ones_like(rows, dtype=torch.bool)
            kept[rows[covered]] = self._nucleus(scores[rows[covered]], top[covered], indices[covered])
            rows = rows[~covered]
            if not len(rows):
                break
        return kept

    def _nucleus(self, scores: torch.Tensor, ranked: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """``scores`` with every token outside the nucleus at -inf, given probabilities ranked high to low."""
        keep = ranked.cumsum(-1) - ranked < self.top_p
        kept = torch.full_like(scores, -float("inf"))
        return kept.scatter_(1, indices, torch.where(keep, scores.gather(1, indices), -float("inf")))


class SeededSampler(LogitsProcessor):
    """Draws each row's next token itself (temperature, exact top-p, then inverse-CDF sampling with one
    uniform number per row from its own generator) and hands ``generate`` a row where only that token is
    finite, so ``generate`` runs greedy and simply takes it."""

    def __init__(self, temperature: float, top_p: float, seed: int) -> None:
        self.nucleus = TemperatureNucleus(temperature, top_p)
        self.seed = seed
        self.rng: torch.Generator | None = None  # made on the logits' device at the first step

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.rng is None:  # the draws stay on the model's device: no host round trip per decode step
            self.rng = torch.Generator(device=scores.device).manual_seed(self.seed)
        cdf = self.nucleus(input_ids, scores.float()).softmax(-1).cumsum(-1)
        # in (0, total]: the first index whose cumulative mass reaches it always has a positive probability
        uniform = torch.rand(cdf.shape[0], 1, generator=self.rng, device=cdf.device)
        target = (1.0 - uniform) * cdf[:, -1:]
        chosen = torch.searchsorted(cdf, target).clamp(max=cdf.shape[-1] - 1)
        return torch.full_like(scores, -float("inf")).scatter_(1, chosen, 0.0)


class LocalGenerator:
    """Answers chat prompts with an in-process transformers model."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        self.model = model
        self.tokenizer = tokenizer

    def generate(
        self, prompts: list[Messages], params: SamplingParams, on_batch: Callable[[int], None] | None = None
    ) -> list[str]:
        """One answer per prompt, in the prompts' order. ``on_batch(n)`` reports progress."""
        return self.complete([self._render(p) for p in prompts], params, on_batch)

    def complete(
        self, texts: list[str], params: SamplingParams, on_batch: Callable[[int], None] | None = None
    ) -> list[str]:
        """Continue raw texts (no chat template), e.g. document prefixes for a base model."""
        encoded = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        answers: list[str] = [""] * len(texts)
        with packed_linears(self.model, min(params.batch_size, len(texts))):
            for batch_index, start in enumerate(range(0, len(order), params.batch_size)):
                indices = order[start : start + params.batch_size]
                outputs = self._generate_batch([encoded[i] for i in indices], params, batch_index)
                for i, text in zip(indices, outputs, strict=True):
                    answers[i] = text
                if on_batch:
                    on_batch(len(indices))
        return answers

    def _render(self, messages: Messages) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    @torch.inference_mode()
    def _generate_batch(self, batch: list[list[int]], params: SamplingParams, batch_index: int) -> list[str]:
        inputs = self._inputs(batch)
        seed = params.seed * 1_000_003 + batch_index
        sampler = [SeededSampler(params.temperature, params.top_p, seed)] if params.temperature > 0 else []
        output = self.model.generate(
            **inputs,
            max_new_tokens=params.max_new_tokens,
            do_sample=False,  # the sampler has already chosen: generate takes the only finite token
            logits_processor=LogitsProcessorList(sampler),
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return [self.tokenizer.decode(t, skip_special_tokens=True).strip() for t in new_tokens]

    def _inputs(self, batch: list[list[int]]) -> dict[str, Any]:
        """``generate``'s inputs for a batch: the prompts left-padded, and the tokens they all start with (the
        chat template's system turn: 23 of SmolLM2's ~55 prompt tokens) run through the model once, at batch
        size one, and handed over as the KV cache. The pads then sit between that prefix and each prompt's
        own tokens; they are masked, and positions count only real tokens, so the model sees what it would
        see unpadded."""
        shared = shared_prefix_length(batch)
        if shared < SHARED_PREFIX_MIN or len(batch) == 1:
            padded = self.tokenizer.pad({"input_ids": batch}, return_tensors="pt", padding=True)
            return dict(padded.to(self.model.device))
        prefix = torch.tensor([batch[0][:shared]], device=self.model.device)
        cache = DynamicCache(config=self.model.config)
        self.model(input_ids=prefix, cache=cache, use_cache=True, logits_to_keep=1)
        cache.batch_repeat_interleave(len(batch))
        rest = self.tokenizer.pad({"input_ids": [ids[shared:] for ids in batch]}, return_tensors="pt", padding=True)
        rest = rest.to(self.model.device)
        mask = rest["attention_mask"]
        return {
            "input_ids": torch.cat([prefix.expand(len(batch), -1), rest["input_ids"]], dim=1),
            "attention_mask": torch.cat([mask.new_ones(len(batch), shared), mask], dim=1),
            "cache": cache,
        }


def shared_prefix_length(batch: list[list[int]]) -> int:
    """How many leading tokens every prompt of ``batch`` has in common, leaving each at least one of its own
    (the first answer token's logits come from a prompt's last token)."""
    shortest = min(len(ids) for ids in batch)
    for position in range(shortest - 1):
        if any(ids[position] != batch[0][position] for ids in batch):
            return position
    return max(shortest - 1, 0)


class LocalEngine:
    """The run's own transformers model answers: the caller loads the weights it answers with."""

    in_process = True

    def generator(self, model: Any, tokenizer: Any, weights: Path | None, name: str) -> LocalGenerator:
        return LocalGenerator(model, tokenizer)

    def hold(self, model: Any, adapter: Path, name: str) -> None:
        model.load_adapter(str(adapter), adapter_name=name)
        model.set_adapter(name)

    def yielding_device(self, how: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # the run's own model is loaded per stage and freed after it


class LocalBackend(Backend):
    """Local transformers in this process (the default, and what runs on a laptop)."""

    name = "local"
    adapters_only = False

    def inputs(self, generation: GenerationConfig) -> dict[str, Any]:
        return {}

    def open(self, config: ExperimentConfig, base: str, dtype: str) -> LocalEngine:
        return LocalEngine()
