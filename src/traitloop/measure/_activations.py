"""A model's hidden states pooled over chosen token positions: the raw material of the persona measures.

Every sequence is a prompt (a chat turn rendered with the model's template, or raw text) followed by an
answer, tokenized separately so the boundary between them is exact. Sequences are padded on the right: in a
causal model real tokens never attend to the padding after them, so the activations do not depend on the
batch (whatever the model's position embeddings), and batches are sorted by length so they pad little.
Forward passes only, under ``torch.inference_mode``, on the model's own device.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

Prompt = str | list[dict[str, str]]
"""A question (one user turn), a whole conversation before the answer (a list of chat messages), or, without
the chat template, a raw text prefix."""


@dataclass(frozen=True)
class Span:
    """Token ids of one sequence and the positions ``[start, end)`` whose hidden states are averaged."""

    ids: list[int]
    start: int
    end: int


def render(tokenizer: PreTrainedTokenizerBase, prompt: Prompt, chat: bool) -> list[int]:
    """The prompt's token ids, ending where the model starts to answer (after the generation prompt)."""
    if chat:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    elif isinstance(prompt, str):
        text = prompt
    else:
        raise TypeError("a prompt without the chat template is raw text, not a list of messages")
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def response_spans(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    answers: Sequence[str],
    chat: bool,
    max_length: int,
) -> list[Span]:
    """Spans over each answer's tokens, in the context of its prompt (the answer cut to fit ``max_length``)."""
    spans = []
    for prompt, answer in zip(prompts, answers, strict=True):
        prompt_ids = render(tokenizer, prompt, chat)[-(max_length - 1) :]
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"][: max_length - len(prompt_ids)]
        spans.append(Span(prompt_ids + answer_ids, len(prompt_ids), len(prompt_ids) + len(answer_ids)))
    return spans


def prompt_spans(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Prompt], chat: bool, max_length: int
) -> list[Span]:
    """Spans over each prompt's last token: the model's state just before it answers."""
    spans = []
    for prompt in prompts:
        ids = render(tokenizer, prompt, chat)[-max_length:]
        spans.append(Span(ids, len(ids) - 1, len(ids)))
    return spans


@torch.inference_mode()
def pooled_states(
    model: PreTrainedModel,
    spans: list[Span],
    pad_id: int,
    batch_size: int = 8,
    layers: list[int] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Sequences × layers × hidden of hidden states averaged over each span (NaN for an empty span).

    Layer 0 is the embedding output and layer i the output of block i, as ``output_hidden_states`` gives
    them; ``layers`` picks some (default: all). ``on_batch`` hears how many more sequences are read.
    """
    order = sorted(range(len(spans)), key=lambda i: len(spans[i].ids))
    pooled: list[np.ndarray | None] = [None] * len(spans)
    with _blocks_up_to(model, None if layers is None else max(layers)):
        for first in range(0, len(order), batch_size):
            batch = [spans[i] for i in order[first : first + batch_size]]
            picked = order[first : first + batch_size]
            for i, states in zip(picked, _pool_batch(model, batch, pad_id, layers), strict=True):
                pooled[i] = states
            if on_batch:
                on_batch(len(batch))
    return np.stack(pooled) if pooled else np.zeros((0, 0, 0), dtype=np.float32)


@contextmanager
def _blocks_up_to(model: PreTrainedModel, layer: int | None) -> Iterator[None]:
    """Within the block, the model runs its decoder blocks only as far as hidden state ``layer`` needs (and one
    more: the last state a model returns is its final norm's, not its last block's). The states up to ``layer``
    are the same; the blocks after it, which nothing reads, are not computed (a persona direction reads layer 12
    of SmolLM2's 30). Models whose blocks are not one ``layers`` list run whole."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = inner.get_decoder() if hasattr(inner, "get_decoder") else None
    blocks = getattr(decoder, "layers", None)
    if layer is None or not isinstance(blocks, torch.nn.ModuleList) or layer + 1 >= len(blocks):
        yield
        return
    decoder.layers = blocks[: layer + 1]
    try:
        yield
    finally:
        decoder.layers = blocks


def _one_logit(model: PreTrainedModel) -> dict[str, int]:
    """Ask for the logits of one position only, where the model supports it: only hidden states are needed, and
    the vocabulary projection over every position is a large share of a small model's forward pass."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(inner.forward).parameters else {}


def _pool_batch(model: PreTrainedModel, batch: list[Span], pad_id: int, layers: list[int] | None) -> np.ndarray:
    width = max(len(s.ids) for s in batch)
    ids = [s.ids + [pad_id] * (width - len(s.ids)) for s in batch]
    mask = [[1] * len(s.ids) + [0] * (width - len(s.ids)) for s in batch]
    weights = torch.zeros(len(batch), width, dtype=torch.float32)
    for row, span in enumerate(batch):
        if span.end > span.start:
            weights[row, span.start : span.end] = 1.0 / (span.end - span.start)
        else:
            weights[row] = float("nan")  # nothing to average: an empty answer
    device = model.device
    output = model(
        input_ids=torch.tensor(ids, dtype=torch.long, device=device),
        attention_mask=torch.tensor(mask, dtype=torch.long, device=device),
        output_hidden_states=True,
        use_cache=False,
        **_one_logit(model),
    )
    weights = weights.to(device)
    hidden = output.hidden_states
    chosen = range(len(hidden)) if layers is None else layers
    # One layer at a time: stacking every layer first would hold layers × batch × tokens × hidden at once.
    pooled = [torch.einsum("bth,bt->bh", hidden[layer].float(), weights) for layer in chosen]
    return torch.stack(pooled, dim=1).cpu().numpy()
