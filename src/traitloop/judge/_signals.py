"""Judge-free signals of an answer: length, distinct-2, repetition, and its likelihood under the base model."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def distinct_n(text: str, n: int = 2) -> float:
    """Share of an answer's n-grams that are unique (1.0 for no repetition; 0 for empty text)."""
    tokens = words(text)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition(text: str, n: int = 4) -> float:
    """Share of an answer's word n-grams that repeat an earlier one: high for text stuck in a loop."""
    tokens = words(text)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def letter_share(text: str) -> float:
    """Share of non-space characters that are letters: low for symbol or digit soup."""
    visible = [c for c in text if not c.isspace()]
    return sum(c.isalpha() for c in visible) / len(visible) if visible else 0.0


@dataclass
class NllScorer:
    """Each answer's per-token negative log-likelihoods (nats) under a model, given its question.

    The answer is scored in context, after the question in the chat template, so an on-topic reply is
    more likely than the same words after an unrelated question. With ``chat=False`` the "question" is a raw
    text prefix (a document opening) and the answer its continuation. Calling the scorer gives each answer's
    mean (perplexity is ``exp`` of it); ``token_nlls`` gives the tokens' own values, which the coherence judge
    summarises its own way. Results are remembered, so both share one forward pass.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    batch_size: int = 8
    max_length: int = 768  # question and answer tokens scored, at least: bounds memory for any file of answers
    chat: bool = True
    answer_tokens: int = 0  # the longest answer the generation could write: up to it, answers are scored whole
    _memo: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def __call__(self, questions: list[str], answers: list[str]) -> list[float]:
        """Each answer's mean per-token NLL (NaN for an answer with no tokens)."""
        return [float(values.mean()) if values.size else math.nan for values in self.token_nlls(questions, answers)]

    def pending(self, questions: list[str], answers: list[str]) -> int:
        """How many distinct (question, answer) pairs are not scored yet."""
        return len({p for p in zip(questions, answers, strict=True) if p not in self._memo})

    def token_nlls(
        self, questions: list[str], answers: list[str], on_done: Callable[[int], None] | None = None
    ) -> list[np.ndarray]:
        """Each answer's per-token NLLs, in order (empty for an answer with no tokens); ``on_done`` hears how
        many more answers are scored, batch by batch."""
        pairs = list(zip(questions, answers, strict=True))
        missing = list(dict.fromkeys(p for p in pairs if p not in self._memo))
        report = on_done or (lambda _: None)
        report(len(pairs) - len(missing))  # remembered: done already (repeated pairs count as done with the first)
        self._memo.update(zip(missing, self._compute(missing, report), strict=True))
        return [self._memo[p] for p in pairs]

    def _prompt_text(self, question: str) -> str:
        if not self.chat:
            return question
        messages = [{"role": "user", "content": question}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    @torch.inference_mode()
    def _compute(self, pairs: list[tuple[str, str]], on_done: Callable[[int], None]) -> list[np.ndarray]:
        rows = []
        for question, answer in pairs:
            prompt_ids = self.tokenizer(self._prompt_text(question), add_special_tokens=False)["input_ids"]
            answer_ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
            limit = max(self.max_length, len(prompt_ids) + self.answer_tokens)
            rows.append((prompt_ids, answer_ids[: limit - len(prompt_ids)]))
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1]))  # batches pad little
        results: list[np.ndarray] = [np.empty(0)] * len(rows)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            values = _batch_nll(self.model, [rows[i] for i in batch], self.tokenizer.pad_token_id)
            for i, value in zip(batch, values, strict=True):
                results[i] = value
            on_done(len(batch))
        return results


def _batch_nll(model: PreTrainedModel, rows: list[tuple[list[int], list[int]]], pad_id: int) -> list[np.ndarray]:
    """Per-token NLLs of each answer after its prompt. Rows are left-padded so every answer ends the sequence
    and the vocabulary projection runs only over answer positions (it is a fifth of the model's compute). The
    batch is built as lists and moved to the model's device in one copy per tensor."""
    width = max(len(p) + len(a) for p, a in rows)
    keep = max(len(a) for _, a in rows) + 1
    ids = [[pad_id] * (width - len(p) - len(a)) + p + a for p, a in rows]
    mask = [[0] * (width - len(p) - len(a)) + [1] * (len(p) + len(a)) for p, a in rows]
    labels = [[-100] * (keep - len(a)) + a for _, a in rows]
    device = model.device
    ids_t = torch.tensor(ids, dtype=torch.long, device=device)
    mask_t = torch.tensor(mask, dtype=torch.long, device=device)
    logits = model(input_ids=ids_t, attention_mask=mask_t, logits_to_keep=keep).logits[:, :-1].float()
    target = torch.tensor(labels, dtype=torch.long, device=device)[:, 1:]
    losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target.clamp(min=0), reduction="none").cpu()
    return [row[keep - 1 - len(a) :].numpy().astype(np.float64) for row, (_, a) in zip(losses, rows, strict=True)]
