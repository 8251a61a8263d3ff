"""Build a tiny randomly initialised Llama with the real SmolLM2 tokenizer, so the whole loop runs in seconds.

Run as a script to write one: ``python tests/tiny_model.py OUT_DIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from traitloop.models import pull


def build_tiny_model(out_dir: Path, seed: int = 0) -> Path:
    """A 2-layer, 64-wide Llama sharing SmolLM2's tokenizer and chat template, saved as safetensors."""
    tokenizer = AutoTokenizer.from_pretrained(pull("smollm2-135m-instruct"))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


if __name__ == "__main__":
    print(build_tiny_model(Path(sys.argv[1])))
