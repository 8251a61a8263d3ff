"""Batched generation with a local transformers model.

Prompts are sorted by length so each batch pads little, and the model is loaded once by the caller and
reused for every batch. Each batch is seeded from the run's seed and its index, so a stage re-run after a
kill samples exactly the same answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 160
    batch_size: int = 16
    seed: int = 0


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
        output = self.model.generate(
            **padded,
            max_new_tokens=params.max_new_tokens,
            do_sample=sampling,
            temperature=params.temperature if sampling else None,
            top_p=params.top_p if sampling else None,
            top_k=None,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        new_tokens = output[:, padded["input_ids"].shape[1] :]
        return [self.tokenizer.decode(t, skip_special_tokens=True).strip() for t in new_tokens]
