"""Training one generation from its stage's data file: the one entry point both the loop (in-process) and
each process of a launched multi-process run call, so the two read the data and train the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from traitloop.config import DpoConfig
from traitloop.train._common import TrainResult
from traitloop.train._dpo import Pair, train_dpo
from traitloop.train._sft import train_sdf, train_sft
from traitloop.traits import load_conversations, read_jsonl


def train_from_file(method: str, base: str, data: Path, dpo: DpoConfig | None = None, **kwargs: Any) -> TrainResult:
    """Train with ``method`` (sft, dpo or sdf) on ``data`` (the stage's train.jsonl); ``kwargs`` are the
    trainer's (output_dir, config, seed, start_from, on_step, ...)."""
    if method == "sft":
        return train_sft(base, load_conversations(data), **kwargs)
    if method == "dpo":
        pairs = [Pair.model_validate(row) for _, row in read_jsonl(data)]
        return train_dpo(base, pairs, dpo=dpo or DpoConfig(), **kwargs)
    if method == "sdf":
        return train_sdf(base, [row["text"] for _, row in read_jsonl(data)], **kwargs)
    raise ValueError(f"unknown training method {method!r}")
