"""A model's shape read from its config.json alone, for planning: no weights are loaded or downloaded.

As accelerate's ``estimate-memory`` does, the model is built from its config on the meta device
(``init_empty_weights``): every parameter has a shape and no storage, so an 8B model is counted in a second
and in no memory. ``init_empty_weights`` registers parameters afresh, which unties tied input and output
embeddings; tying them again counts them once, as the published sizes do.

For a hub id only ``config.json`` is fetched (``hf_hub_download``); offline, that is refused with what to do.
The study's model, which the presets in ``examples/study/`` name, has its public config.json shipped here
(``data/configs/``), so those presets are planned offline as well.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traitloop.errors import UserError
from traitloop.models._registry import REGISTRY, cache_dir, is_cached, resolve_model

SHIPPED_CONFIGS = Path(__file__).parent / "data" / "configs"  # hub id with / as --, holding config.json alone


@dataclass(frozen=True)
class ModelShape:
    """What planning needs to know of a causal language model: its sizes, and every linear layer (name, in
    features, out features) but the output head, which is what LoRA's ``all-linear`` adapts."""

    name: str
    model_type: str
    parameters: int  # unique parameters: tied input and output embeddings count once
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    qk_norm: bool  # RMSNorm over each query and key head (Qwen3), which keeps float32 copies for backward
    linears: tuple[tuple[str, int, int], ...]

    @property
    def linear_parameters(self) -> int:
        """Parameters in the decoder's linear layers (what 4-bit quantization packs)."""
        return sum(fan_in * fan_out for _, fan_in, fan_out in self.linears)

    def adapted(self, target_modules: list[str] | str) -> list[tuple[str, int, int]]:
        """The linear layers a LoRA with ``target_modules`` adapts, matched as PEFT matches them: a module
        whose name is, or ends with ``.`` and, one of the names; ``all-linear``: every one but the output head."""
        if target_modules == "all-linear":
            return list(self.linears)
        names = [target_modules] if isinstance(target_modules, str) else target_modules
        return [linear for linear in self.linears if any(linear[0] == n or linear[0].endswith(f".{n}") for n in names)]

    def lora_parameters(self, r: int, target_modules: list[str] | str) -> int:
        """Parameters of a rank-``r`` LoRA adapter: A (r x in) and B (out x r) for each adapted layer."""
        return sum(r * (fan_in + fan_out) for _, fan_in, fan_out in self.adapted(target_modules))

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        """Bytes of KV cache one token holds: a key and a value per layer and key-value head."""
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes


def model_config(name: str, trust_remote_code: bool = False) -> Any:
    """The transformers config of a model: a built-in model's (from its converted folder, or the config it
    ships with when not yet converted), a local folder's config.json, or a hub id's config.json alone."""
    from transformers import AutoConfig

    if name in REGISTRY:
        folder = cache_dir() / "models" / name
        if is_cached(name):
            return AutoConfig.from_pretrained(folder)
        values = dict(REGISTRY[name].config)
        return AutoConfig.for_model(values.pop("model_type"), **values)
    resolved = resolve_model(name)  # a local folder with a config.json, or a hub id; else a UserError
    if Path(resolved).exists():
        return AutoConfig.from_pretrained(resolved, trust_remote_code=trust_remote_code)
    shipped = SHIPPED_CONFIGS / resolved.replace("/", "--")
    if (shipped / "config.json").is_file():
        return AutoConfig.from_pretrained(shipped)
    return AutoConfig.from_pretrained(Path(_hub_config(resolved)).parent, trust_remote_code=trust_remote_code)


def _hub_config(repo: str) -> str:
    """The path of a hub model's config.json, fetched alone (or found in the local hub cache)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        return hf_hub_download(repo, "config.json")
    except GatedRepoError:
        raise UserError(
            f"model {repo} is gated on the Hugging Face hub: accept its licence and log in (hf auth login), or "
            "give a local folder holding its config.json"
        ) from None
    except RepositoryNotFoundError:
        raise UserError(f"model {repo} is not on the Hugging Face hub (or is private): check the name") from None
    except Exception as error:  # offline, a proxy, a timeout: huggingface_hub raises several kinds
        raise UserError(
            f"cannot fetch config.json of model {repo} from the Hugging Face hub ({type(error).__name__}): this "
            "machine looks offline. Planning needs only that one file: put it in a folder and give the folder as "
            "the model (a local folder works), or plan where the hub can be reached"
        ) from None


@functools.lru_cache(maxsize=8)
def model_shape(name: str, trust_remote_code: bool = False) -> ModelShape:
    """A model's shape, built from its config on the meta device (no weights, no memory); remembered for the
    process, as a run plans every stage (and each micro-batch it tries) of one model."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    config = model_config(name, trust_remote_code)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    model.tie_weights()  # init_empty_weights registers every parameter afresh, which unties tied embeddings
    head = model.get_output_embeddings()
    linears = tuple(
        (module_name, module.in_features, module.out_features)
        for module_name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head
    )
    text = config.get_text_config()
    heads = text.num_attention_heads
    return ModelShape(
        name=name,
        model_type=text.model_type,
        parameters=sum(p.numel() for p in model.parameters()),
        layers=text.num_hidden_layers,
        hidden=text.hidden_size,
        intermediate=getattr(text, "intermediate_size", None) or 4 * text.hidden_size,
        heads=heads,
        kv_heads=getattr(text, "num_key_value_heads", None) or heads,
        head_dim=getattr(text, "head_dim", None) or text.hidden_size // heads,
        vocab=text.vocab_size,
        qk_norm=any(module_name.endswith("q_norm") for module_name, _ in model.named_modules()),
        linears=linears,
    )
