"""Linear layers through oneDNN with pre-packed weights, while a CPU model generates.

Nearly all of a decode step's time is its matrix products, and a decode step's products are thin: a batch of
rows times 576-wide weights for SmolLM2. On CPU, torch sends them to MKL's sgemm, which re-packs the weight
on every call; oneDNN with the weight packed once for the whole generation does the same products faster
(``benchmarks/throughput.py`` measures both). This is the op that ``torch.compile`` itself emits for linear
layers on CPU, used here without compiling.

A LoRA layer is packed with its adapter folded into the weight, as the layer computes it at that moment
(an adapter turned off by ``disable_adapter()`` is left out), so a generation samples from exactly the model
it names. Nothing is changed for good: each layer gets its own forward back when the block ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def packing_available(model: nn.Module) -> bool:
    """oneDNN packing applies to an fp32 model on CPU, in a torch built with oneDNN."""
    parameter = next(model.parameters())
    return (
        parameter.device.type == "cpu"
        and parameter.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


@contextmanager
def packed_linears(model: nn.Module, batch_size: int) -> Iterator[None]:
    """Within the block, every linear layer of ``model`` (LoRA layers with their adapter folded in) runs
    through oneDNN with its weight packed once for ``batch_size`` rows. Only for inference: packed weights
    have no gradient. Does nothing where :func:`packing_available` is false."""
    if not packing_available(model):
        yield
        return
    replaced = []
    try:
        with torch.no_grad():
            for module in _outermost_linears(model):
                weight, bias = _effective_weight(module)
                module.forward = _packed_forward(torch.ops.mkldnn._reorder_linear_weight(weight, batch_size), bias)
                replaced.append(module)
        yield
    finally:
        for module in replaced:
            del module.forward  # the class's forward again


def _outermost_linears(model: nn.Module) -> Iterator[nn.Module]:
    """Linear layers and LoRA-wrapped linear layers, not the base layer inside a LoRA layer."""
    skip: set[int] = set()
    for module in model.modules():
        if id(module) in skip or "forward" in module.__dict__:
            continue
        if _is_lora_linear(module) or type(module) is nn.Linear:
            skip.update(id(m) for m in module.modules())
            if not _uses_dora(module):  # DoRA rescales the output: not a weight plus a delta, left as it is
                yield module


def _is_lora_linear(module: nn.Module) -> bool:
    return type(module.__dict__.get("_modules", {}).get("base_layer")) is nn.Linear and hasattr(
        module, "get_delta_weight"
    )


def _uses_dora(module: nn.Module) -> bool:
    return any(getattr(module, "use_dora", {}).get(a, False) for a in getattr(module, "active_adapters", []))


def _effective_weight(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The weight and bias the layer applies now: a LoRA layer's base weight plus each active adapter's
    delta, unless adapters are disabled or already merged into the base weight."""
    if type(module) is nn.Linear:
        return module.weight.detach(), module.bias
    base = module.base_layer
    weight = base.weight.detach()
    if not module.disable_adapters and not module.merged:
        for adapter in module.active_adapters:
            if adapter in module.lora_A:
                weight = weight + module.get_delta_weight(adapter)
    return weight.contiguous(), base.bias


def _packed_forward(packed: torch.Tensor, bias: torch.Tensor | None):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")

    return forward
