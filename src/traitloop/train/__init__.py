"""Finetuning one generation: thin layers over TRL and PEFT."""

from traitloop.train._common import TrainResult, weights_hash
from traitloop.train._dpo import Pair, reference_used, train_dpo
from traitloop.train._files import train_from_file
from traitloop.train._launch import train_launched
from traitloop.train._sft import train_sdf, train_sft

__all__ = [
    "Pair",
    "TrainResult",
    "reference_used",
    "train_dpo",
    "train_from_file",
    "train_launched",
    "train_sdf",
    "train_sft",
    "weights_hash",
]
