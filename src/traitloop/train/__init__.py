"""Finetuning one generation: thin layers over TRL and PEFT."""

from traitloop.train._sft import TrainResult, train_sft

__all__ = ["TrainResult", "train_sft"]
