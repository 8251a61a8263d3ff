"""Where a run's models compute and in which dtype: resolved once from the config's ``device`` and ``dtype``.

``auto`` means the GPU when torch sees one, else the CPU; and on a GPU bfloat16 where it is supported
(Ampere and later), float32 elsewhere. The CPU generates and scores in float32: the oneDNN-packed
generation path is fp32, and a 135M model's decode steps are faster in it. Training keeps float32 master
weights in any case; it computes in bfloat16 through autocast on a GPU with bfloat16, and under ``auto`` on a
CPU whose matrix units compute bfloat16 natively (AVX512-BF16 or AMX), where a LoRA step takes half the time
(``benchmarks/training_collation.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from traitloop.errors import UserError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Precision:
    """A device and the dtype models compute in on it."""

    device: torch.device
    dtype: torch.dtype

    @property
    def facts(self) -> dict[str, str]:
        """What a stage record says about where it ran: ``{"device": "cuda", "dtype": "bfloat16"}``."""
        return {"device": self.device.type, "dtype": dtype_name(self.dtype)}


CPU_FLOAT32 = Precision(torch.device("cpu"), torch.float32)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto``: cuda when torch sees a CUDA GPU, else cpu. Asking for cuda without one is a UserError."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise UserError(f"device must be auto, cpu or cuda (got {name!r})")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "device is cuda, but torch sees no CUDA GPU on this machine (torch.cuda.is_available() is False, "
            f"torch {torch.__version__}); set device: auto or cpu, or install a CUDA build of torch"
        )
    return torch.device(name)


def resolve_dtype(name: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``auto``: bfloat16 on a GPU that supports it, else float32. bfloat16 on a GPU without it is a UserError."""
    if isinstance(name, torch.dtype):
        return name
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    if name not in DTYPES:
        raise UserError(f"dtype must be auto, {' or '.join(DTYPES)} (got {name!r})")
    if name == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError("dtype is bfloat16, but this GPU does not support it; set dtype: auto or float32")
    return DTYPES[name]


def resolve_precision(device: str | torch.device = "auto", dtype: str | torch.dtype = "auto") -> Precision:
    """The config's ``device`` and ``dtype`` (``auto`` or a name) as what this machine will use."""
    resolved = resolve_device(device)
    return Precision(resolved, resolve_dtype(dtype, resolved))


def resolve_training_precision(device: str | torch.device = "auto", dtype: str | torch.dtype = "auto") -> Precision:
    """Where and in what dtype training computes: the run's precision, except that ``dtype: auto`` on a CPU
    trains in bfloat16 where the CPU computes it natively (the run still generates and scores in float32).
    A ``dtype`` the config names is kept as it is: ``float32`` trains in float32 everywhere."""
    precision = resolve_precision(device, dtype)
    if dtype == "auto" and precision.device.type == "cpu" and cpu_computes_bfloat16():
        return Precision(precision.device, torch.bfloat16)
    return precision


def cpu_computes_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX512-BF16 or AMX), as oneDNN reports it.
    Elsewhere bfloat16 is emulated, slower than float32."""
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
