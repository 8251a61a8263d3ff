"""Batched generation with a local transformers model.

Prompts are sorted by length so each batch pads little, and the model is loaded once by the caller and
reused for every batch. Each batch is seeded from the run's seed and its index, so a stage re-run after a
kill samples exactly the same answers.

Nucleus sampling is done by :class:`TemperatureNucleus` rather than transformers' top-p warper, which
sorts the whole vocabulary for every row at every step: on CPU that sort took longer than the model's
forward pass for SmolLM2's 49k-token vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase
from transformers.generation.logits_process import TopPLogitsWarper

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 160
    batch_size: int = 16
    seed: int = 0


class TemperatureNucleus(LogitsProcessor):
    """Temperature, then top-p: the same tokens survive as with transformers' warpers, found without a sort.

    A token is kept when the probability mass of the tokens ranked above it is below ``top_p``. When the
    ``candidates`` most likely tokens already hold ``top_p`` of the mass (nearly always for a trained
    model), every kept token is among them, so a top-k replaces the full sort; rows where they do not
    fall back to transformers' exact warper.
    """

    def __init__(self, temperature: float, top_p: float, candidates: int = 256) -> None:
        self.temperature, self.top_p, self.candidates = temperature, top_p, candidates

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores / self.temperature
        if self.top_p >= 1.0:
            return scores
        probs, indices = scores.softmax(-1).topk(min(self.candidates, scores.shape[-1]), dim=-1)
        keep = probs.cumsum(-1) - probs < self.top_p
        kept = torch.full_like(scores, -float("inf"))
        kept.scatter_(1, indices, torch.where(keep, scores.gather(1, indices), -float("inf")))
        flat = probs.sum(-1) < self.top_p
        if flat.any():
            kept[flat] = TopPLogitsWarper(self.top_p)(input_ids[flat], scores[flat])
        return kept


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
        torch.manual_seed(params.seed * 1_000_003 + batch_index)
        sampling = params.temperature > 0
        warper = [TemperatureNucleus(params.temperature, params.top_p)] if sampling else []
        output = self.model.generate(
            **padded,
            max_new_tokens=params.max_new_tokens,
            do_sample=sampling,
            logits_processor=LogitsProcessorList(warper),
            temperature=1.0,  # neutral values, whatever the model's generation_config says: the warper decides
            top_p=1.0,
            top_k=0,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        new_tokens = output[:, padded["input_ids"].shape[1] :]
        return [self.tokenizer.decode(t, skip_special_tokens=True).strip() for t in new_tokens]
