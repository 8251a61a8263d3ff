"""Batched generation with a local transformers model.

Prompts are sorted by length so each batch pads little, and the model is loaded once by the caller and
reused for every batch, with the KV cache. Each batch is sampled with its own generator, seeded from the
stage's seed and the batch's index, so a stage re-run after a kill samples exactly the same answers.

Sampling is done by :class:`SeededSampler`, not by transformers' warpers and multinomial draw: on CPU, the
top-p warper's sort of the whole vocabulary and the multinomial's one random variate per vocabulary entry
cost a third of the generation time for SmolLM2's 49k-token vocabulary (``benchmarks/throughput.py``
compares the two).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

Messages = list[dict[str, str]]


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
    ``candidates`` most likely tokens already hold ``top_p`` of the mass (nearly always for a trained
    model), every kept token is among them, so a top-k replaces the sort of the whole vocabulary; only the
    rows where they do not are sorted.
    """

    def __init__(self, temperature: float, top_p: float, candidates: int = 256) -> None:
        self.temperature, self.top_p, self.candidates = temperature, top_p, candidates

    def __call__(self, input_ids: torch.LongTensor | None, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores / self.temperature
        if self.top_p >= 1.0:
            return scores
        probs = scores.softmax(-1)
        top, indices = probs.topk(min(self.candidates, scores.shape[-1]), dim=-1)
        kept = self._nucleus(scores, top, indices)
        flat = top.sum(-1) < self.top_p
        if flat.any():
            kept[flat] = self._nucleus(scores[flat], *probs[flat].sort(-1, descending=True))
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
        self.rng = torch.Generator().manual_seed(seed)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        cdf = self.nucleus(input_ids, scores.float()).softmax(-1).cumsum(-1)
        # in (0, total]: the first index whose cumulative mass reaches it always has a positive probability
        target = (1.0 - torch.rand(cdf.shape[0], 1, generator=self.rng)) * cdf[:, -1:]
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
        padded = self.tokenizer.pad({"input_ids": batch}, return_tensors="pt", padding=True)
        seed = params.seed * 1_000_003 + batch_index
        sampler = [SeededSampler(params.temperature, params.top_p, seed)] if params.temperature > 0 else []
        output = self.model.generate(
            **padded,
            max_new_tokens=params.max_new_tokens,
            do_sample=False,  # the sampler has already chosen: generate takes the only finite token
            logits_processor=LogitsProcessorList(sampler),
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        new_tokens = output[:, padded["input_ids"].shape[1] :]
        return [self.tokenizer.decode(t, skip_special_tokens=True).strip() for t in new_tokens]
