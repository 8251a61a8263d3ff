"""Judge-free signals of an answer: length, distinct-2, repetition, and its likelihood under the base model."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

NllScorer = Callable[[list[str], list[str]], list[float]]
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


def base_nll_scorer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int = 8,
    max_length: int = 768,
    chat: bool = True,
) -> NllScorer:
    """Build a function giving each answer's mean per-token negative log-likelihood under ``model``.

    The answer is scored in context, after the question in the chat template, so an on-topic reply is
    more likely than the same words after an unrelated question. With ``chat=False`` the "question" is a raw
    text prefix (a document opening) and the answer its continuation. Perplexity is ``exp`` of this value.
    Results are remembered, so the coherence judge and the perplexity signal share one forward pass.
    """
    memo: dict[tuple[str, str], float] = {}

    def prompt_text(question: str) -> str:
        if not chat:
            return question
        messages = [{"role": "user", "content": question}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def score(questions: list[str], answers: list[str]) -> list[float]:
        pairs = list(zip(questions, answers, strict=True))
        missing = list(dict.fromkeys(p for p in pairs if p not in memo))
        memo.update(zip(missing, compute(missing), strict=True))
        return [memo[p] for p in pairs]

    @torch.inference_mode()
    def compute(pairs: list[tuple[str, str]]) -> list[float]:
        rows = []
        for question, answer in pairs:
            prompt_ids = tokenizer(prompt_text(question), add_special_tokens=False)["input_ids"]
            answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"][: max_length - len(prompt_ids)]
            rows.append((prompt_ids, answer_ids))
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1]))  # batches pad little
        results = [math.nan] * len(rows)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            for i, value in zip(
                batch, _batch_nll(model, [rows[i] for i in batch], tokenizer.pad_token_id), strict=True
            ):
                results[i] = value
        return results

    return score


def _batch_nll(model: PreTrainedModel, rows: list[tuple[list[int], list[int]]], pad_id: int) -> list[float]:
    """Mean NLL of each answer after its prompt. Rows are left-padded so every answer ends the sequence and
    the vocabulary projection runs only over answer positions (it is a fifth of the model's compute). The
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
    losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target.clamp(min=0), reduction="none")
    counts = (target != -100).sum(dim=1)
    totals = (losses * (target != -100)).sum(dim=1)
    return [total / count if count else math.nan for total, count in zip(totals.tolist(), counts.tolist(), strict=True)]
