"""How much memory a stage holds at its peak, from the model's shape and the stage's settings alone, item by
item so that a plan can say where it goes.

**Activations.** Training keeps, for each decoder layer, the tensors its backward pass needs. Counting what
autograd saves in a Llama-style layer (RMSNorm, grouped-query attention through SDPA, a SwiGLU MLP) with a
LoRA adapter on its linear layers gives, per token, with activations of ``b`` bytes (2 in bfloat16, 4 in
float32), hidden size h, q = heads x head_dim, kv = key-value heads x head_dim, intermediate size i:

- ``2h x 4``: each of the two RMSNorms keeps its input in float32 (a float32 copy under bfloat16);
- ``2h x b``: the normalised inputs that the projections' LoRA A matrices keep;
- ``5q x b``: query, key and value, the key and value repeated to every query head (a padding mask rules out
  SDPA's grouped-query path), SDPA's output, and o_proj's input; plus ``heads x 4``, SDPA's log-sum-exp;
- ``L x b``: the padding mask, which SDPA turns into a float bias (B x L x L) in every layer and keeps;
- ``4i x b``: the MLP's gate, up, SiLU(gate) and their product;
- ``r x b`` for each adapted linear layer: its LoRA A output;
- ``4(q + kv)`` with per-head query/key norms (Qwen3): their float32 copies.

This is Korthikanti et al.'s count ("Reducing Activation Recomputation in Large Transformer Models", 2022: 34h
bytes a token in a GPT layer with dropout) redone for the layers these models have: no dropout, a wider SwiGLU
MLP, grouped-query attention, and SDPA's fused kernels, which keep no L x L attention probabilities. On the
embedded model it is within 3% of what autograd saves (counted with saved-tensor hooks); LoRA on fewer layers
keeps a little less (the count is for every linear layer adapted, so it errs high).

With gradient checkpointing a layer keeps only its input (h x the residual stream's bytes); backward runs one
layer again at a time and holds its activations and their gradients: twice one layer's count.

**The output head.** TRL scores log-probabilities in tiles of at most 4,096 tokens x 32,768 vocabulary entries
and never builds the whole logits (``trl.kernels.chunked_logprob``). On a GPU a Triton kernel scores only the
positions the loss falls on, inside one tile; on a CPU the torch fallback scores every position and holds about
eight float32 tiles at once in backward (measured on its own: 8.2 to 8.3). That is while every layer's
activations are still kept, so a training stage's peak is the kept activations plus the larger of the head's
tiles and one layer's backward. ``benchmarks/plan_memory.py`` compares the whole with what training holds.

**Optimizer.** AdamW keeps two float32 states per trained parameter, beside its float32 weight and gradient:
16 bytes per LoRA parameter, or per parameter with ``full_finetune`` (plus a bfloat16 copy of every weight that
autocast makes for the forward pass). A frozen base costs its weights only, in the run's dtype, or about 0.52
bytes per linear-layer parameter in 4-bit NF4 with double quantization (bitsandbytes: 4.127 bits).
"""

from __future__ import annotations

from dataclasses import dataclass

from traitloop.models import ModelShape

FP32 = 4
TOKEN_TILE, VOCAB_TILE = 4096, 32768  # TRL's log-probability tiles (trl.kernels.chunked_logprob)
HEAD_TILES = {"cuda": 1, "cpu": 8}  # tiles the head's backward holds at once: Triton kernel / torch fallback
NF4_BYTES = 4.127 / 8  # bitsandbytes 4-bit NF4 with double-quantized block constants, a parameter
CUDA_OVERHEAD = 1 << 30  # the CUDA context, cuBLAS/cuDNN workspaces and the caching allocator's rounding
SCORING_BATCH = 8  # answers the coherence judge's likelihood scorer runs together (judge.NllScorer)


@dataclass(frozen=True)
class MemoryItem:
    """One part of a stage's peak memory."""

    name: str
    bytes: int


@dataclass(frozen=True)
class TrainShape:
    """What a training step holds, besides the model: how many sequences of how many tokens, and how."""

    device: str  # cuda or cpu: which kernels score the output head
    dtype_bytes: int  # the run's dtype: 2 (bfloat16) or 4 (float32)
    sequences: int  # sequences in one micro-batch (DPO: chosen and rejected of each pair)
    length: int  # tokens of the longest sequence, which the batch is padded to
    label_tokens: int  # tokens of the micro-batch the loss is computed on
    checkpointing: bool
    full_finetune: bool
    lora_r: int
    lora_targets: list[str] | str
    quantized: bool = False  # the frozen base in 4-bit
    reference_adapter: bool = False  # a frozen copy of the adapter as DPO's reference
    teacher: bool = False  # a frozen teacher model beside the student (distillation)
    generated_tokens: int = 0  # tokens the student samples per sequence inside training (distillation)


def per_token_layer_bytes(shape: ModelShape, dtype_bytes: int, length: int, lora_r: int, adapted: int) -> int:
    """Activation bytes one token keeps in one decoder layer for backward (module docstring)."""
    b, h, i = dtype_bytes, shape.hidden, shape.intermediate
    q, kv = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    kept = 2 * h * FP32 + 2 * h * b + 5 * q * b + shape.heads * FP32 + length * b + 4 * i * b
    kept += adapted * lora_r * b
    if shape.qk_norm:
        kept += FP32 * (q + kv)
    return kept


def weights_bytes(shape: ModelShape, dtype_bytes: int, quantized: bool = False) -> int:
    """The model's weights in ``dtype_bytes``, or with its decoder's linear layers in 4-bit NF4."""
    if not quantized:
        return shape.parameters * dtype_bytes
    return int(shape.linear_parameters * NF4_BYTES) + (shape.parameters - shape.linear_parameters) * dtype_bytes


def training_memory(shape: ModelShape, train: TrainShape) -> list[MemoryItem]:
    """A training step's peak, item by item (module docstring)."""
    b = train.dtype_bytes
    tokens = train.sequences * train.length
    items = []
    if train.full_finetune:
        items.append(MemoryItem("weights (float32, trained)", shape.parameters * FP32))
        items.append(MemoryItem("gradients and Adam state (float32)", shape.parameters * 3 * FP32))
        if b < FP32:
            items.append(MemoryItem("autocast copies of the weights", shape.parameters * b))
        adapted = len(shape.linears) // shape.layers
        residual = FP32
    else:
        dtype = "4-bit" if train.quantized else _dtype(b)
        items.append(MemoryItem(f"frozen weights ({dtype})", weights_bytes(shape, b, train.quantized)))
        lora = shape.lora_parameters(train.lora_r, train.lora_targets)
        items.append(MemoryItem(f"LoRA r{train.lora_r}: weights, gradients, Adam (float32)", lora * 4 * FP32))
        if train.reference_adapter:
            items.append(MemoryItem("reference adapter (frozen)", lora * FP32))
        adapted = len(shape.adapted(train.lora_targets)) // shape.layers
        residual = b
    if train.teacher:
        items.append(MemoryItem(f"teacher ({_dtype(b)}, frozen)", weights_bytes(shape, b)))
    if train.generated_tokens:
        kv = train.sequences * train.length * shape.kv_bytes_per_token(b)
        items.append(MemoryItem(f"sampling KV cache ({train.sequences} x {train.length} tokens)", kv))
    layer = tokens * per_token_layer_bytes(shape, b, train.length, train.lora_r, adapted)
    if train.checkpointing:
        kept = shape.layers * tokens * shape.hidden * residual
        items.append(MemoryItem("activations, checkpointed (each layer's input)", kept))
        recompute = 2 * layer
    else:
        items.append(MemoryItem(f"activations ({train.sequences} x {train.length} tokens)", shape.layers * layer))
        recompute = layer
    head = head_tiles_bytes(shape, train) * (2 if train.teacher else 1)
    if head >= recompute:
        items.append(MemoryItem("output head's log-probability tiles", head))
    else:
        label = "one layer recomputed, and its gradients" if train.checkpointing else "one layer's gradients"
        items.append(MemoryItem(label, recompute))
    return items


def head_tiles_bytes(shape: ModelShape, train: TrainShape) -> int:
    """What scoring the output head in tiles holds at its peak (module docstring): on a GPU the positions the
    loss falls on, in the run's dtype; on a CPU every position, in float32."""
    gpu = train.device == "cuda"
    scored = train.label_tokens if gpu else train.sequences * (train.length - 1)
    tile = min(scored, TOKEN_TILE) * min(shape.vocab, VOCAB_TILE) * (train.dtype_bytes if gpu else FP32)
    hidden = 2 * scored * shape.hidden * FP32  # the scored positions' hidden states and their gradient
    return HEAD_TILES["cuda" if gpu else "cpu"] * tile + hidden


def generation_memory(
    shape: ModelShape, dtype_bytes: int, batch: int, prompt: int, new_tokens: int
) -> list[MemoryItem]:
    """Sampling with the run's own model (the local backend): its KV cache and one prefill step's work."""
    length = prompt + new_tokens
    kv = batch * length * shape.kv_bytes_per_token(dtype_bytes)
    prefill = batch * prompt * _forward_bytes_per_token(shape) * dtype_bytes
    logits = batch * shape.vocab * 3 * FP32  # the last position's logits, their softmax, the sampler's copy
    return [
        MemoryItem(f"KV cache ({batch} x {length} tokens)", kv),
        MemoryItem("prefill and sampling", prefill + logits),
    ]


def scoring_memory(shape: ModelShape, dtype_bytes: int, prompt: int, answer: int) -> MemoryItem:
    """The coherence judge's likelihood of each answer under the base model: a forward pass of
    ``SCORING_BATCH`` answers whose logits (answer positions only) are upcast and log-softmaxed."""
    tokens = SCORING_BATCH * (prompt + answer)
    logits = SCORING_BATCH * (answer + 1) * shape.vocab * (dtype_bytes + 2 * FP32)
    forward = tokens * _forward_bytes_per_token(shape) * dtype_bytes
    return MemoryItem(f"likelihood scoring ({SCORING_BATCH} x {prompt + answer} tokens)", logits + forward)


def _forward_bytes_per_token(shape: ModelShape) -> int:
    """Elements a token's pass through one layer holds at once without autograd: its hidden states, attention
    inputs and output, and the MLP's two intermediate tensors."""
    return 2 * shape.hidden + 5 * shape.heads * shape.head_dim + 2 * shape.intermediate


def _dtype(dtype_bytes: int) -> str:
    return "bfloat16" if dtype_bytes == 2 else "float32"
