"""A generation's weights as a standalone Hugging Face folder, in the layout transformers, PEFT and vLLM load as
it is: for evaluation suites outside traitloop.

An adapter is written as PEFT saves one (``adapter_config.json``, ``adapter_model.safetensors``), its
``base_model_name_or_path`` pointing at the resolved base model, with the base's tokenizer beside it; merged, as
a full model (``config.json``, safetensors weights, the tokenizer). The folder is built beside its destination
and renamed into place, so an interrupted export leaves nothing half-written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from traitloop._atomic import atomic_folder
from traitloop.models._device import CPU_FLOAT32, DTYPES
from traitloop.models._load import is_adapter, load_model

EXPORT_FILE = "traitloop-export.json"  # where the folder came from: the run, the generation, its weights' hash
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


def export_weights(
    base: str,
    weights: Path,
    output: Path,
    merge: bool = False,
    trust_remote_code: bool = False,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write ``weights`` (an adapter on ``base``, or a full model) to ``output`` as a standalone folder: the
    adapter as it is, or with ``merge`` (and always for full weights) the merged model in the base checkpoint's
    own dtype. Replaces ``output``; the caller refuses one it should not."""
    from transformers import AutoTokenizer

    with atomic_folder(Path(output), is_current=lambda _: False) as staging:
        if is_adapter(weights) and not merge:
            _copy_adapter(weights, staging, base)
        else:
            _save_merged(base, weights, staging, trust_remote_code)
        AutoTokenizer.from_pretrained(base, trust_remote_code=trust_remote_code).save_pretrained(staging)
        record = {**(provenance or {}), "base": base, "merged": merge or not is_adapter(weights)}
        (staging / EXPORT_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return Path(output)


def _copy_adapter(weights: Path, staging: Path, base: str) -> None:
    """The adapter's files, with its config pointing at ``base`` (the path or hub id the base resolves to)."""
    for name in ADAPTER_FILES:
        if (weights / name).is_file():
            shutil.copy2(weights / name, staging / name)
    config_path = staging / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _save_merged(base: str, weights: Path, staging: Path, trust_remote_code: bool) -> None:
    """The base with the adapter's update added into its weights (in float32), saved in the dtype the base
    checkpoint declares (a bfloat16 model stays bfloat16), or full weights saved again."""
    from transformers import AutoConfig

    declared = getattr(AutoConfig.from_pretrained(base, trust_remote_code=trust_remote_code), "dtype", None)
    stored = str(declared or "float32").removeprefix("torch.")
    model = load_model(base, weights, trust_remote_code=trust_remote_code, precision=CPU_FLOAT32)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if stored in DTYPES and stored != "float32":
        model = model.to(DTYPES[stored])
    model.save_pretrained(staging, safe_serialization=True)
