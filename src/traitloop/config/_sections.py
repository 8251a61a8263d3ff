"""The settings sections of an experiment config: generation, training, evaluation, the methods' own and the
judges'. Each is a typed, validated pydantic model that refuses unknown fields; none holds logic beyond
checking its own fields.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


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
    max_model_len: int | None = Field(
        None, ge=16, description="Longest prompt plus answer the engine serves (default: the model's own context)."
    )
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one engine spans (tensor parallelism).")
    enforce_eager: bool = Field(False, description="No CUDA graphs: a faster start and less memory, slower decoding.")
    during_training: Literal["sleep", "rebuild", "keep"] = Field(
        "sleep",
        description="What the engine does while a generation trains in the same process: sleep (vLLM's sleep "
        "mode: weights to CPU memory, KV cache freed, back without a rebuild), rebuild (shut down, built again "
        "when next needed), or keep its share of the GPU.",
    )


class GenerationConfig(_Section):
    """How a generation answers the prompt pool to make the next training set."""

    temperature: float = Field(1.0, ge=0.0, le=2.0, description="Sampling temperature; 0 means greedy.")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(160, ge=1, description="Longest answer, in tokens.")
    batch_size: int = Field(64, ge=1, description="Prompts generated together (bigger is faster on CPU).")
    backend: str = Field(
        "local",
        description="Who samples every answer (training data and evaluation): local transformers, an "
        "OpenAI-compatible server (generation.server), or vLLM in this process (the traitloop[vllm] extra); "
        "the registry in traitloop.generate lists them.",
    )
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=lambda: {"enable_thinking": False},
        description="Options of the model's chat template, applied wherever a conversation is rendered: local, "
        "vLLM and server generation, training data, evaluation. Only those the template reads apply (and are "
        "recorded); thinking is off by default where a template has the switch (Qwen3).",
    )
    server: GenerationServer | None = Field(None, description="The server, for backend: server.")
    vllm: VllmSettings = Field(default_factory=VllmSettings, description="vLLM's engine, for backend: vllm.")


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
    batch_size: int = Field(
        8,
        ge=1,
        description="Examples per optimizer step (the effective batch, all processes together); what does not fit "
        "in memory at once is reached by gradient accumulation over micro-batches.",
    )
    micro_batch_size: int | None = Field(
        None,
        ge=1,
        description="Examples per process in one forward pass. Default: the largest the memory plan says fits "
        "(traitloop plan); on a CPU, the whole batch.",
    )
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Steps of batch_size accumulated per optimizer step (older configs; prefer batch_size)."
    )
    gradient_checkpointing: bool | None = Field(
        None,
        description="Recompute activations in the backward pass instead of keeping them: far less memory for a "
        "third more compute. Default: on when training on a GPU, off on a CPU.",
    )
    quantization: Literal["4bit"] | None = Field(
        None,
        description="QLoRA: the frozen base in 4-bit NF4 (bitsandbytes, a CUDA GPU; the qlora extra); the LoRA "
        "weights stay float32.",
    )
    max_length: int = Field(512, ge=16, description="Longest training sequence, in tokens.")
    collation: Literal["padded", "padding_free", "length_grouped"] = Field(
        "padded",
        description="How SFT and SDF batches are laid out: padded to their longest example; padding_free (the "
        "batch as one sequence, each example attending only to itself: no compute on padding); or "
        "length_grouped (batches of similar lengths, so other batches than padded's).",
    )
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    scheduler: Literal["linear", "constant", "cosine"] = Field(
        "linear", description="The learning rate after warmup: linear decay to 0 (the study's), constant, or cosine."
    )
    adam_betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW's betas (the study's: 0.9, 0.95).")
    adam_eps: float = Field(1e-8, gt=0.0, description="AdamW's epsilon.")
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
        per_process = self.batch_size // self.processes
        if self.micro_batch_size is not None and per_process % self.micro_batch_size:
            raise ValueError(
                f"micro_batch_size {self.micro_batch_size} must divide each process's share of batch_size "
                f"({per_process}): a step accumulates whole micro-batches"
            )
        if self.quantization and self.full_finetune:
            raise ValueError("quantization holds the frozen base in 4 bits for LoRA; drop full_finetune")
        if not all(0.0 <= beta < 1.0 for beta in self.adam_betas):
            raise ValueError(f"adam_betas {self.adam_betas} must each be at least 0 and below 1")
        return self

    def stage_inputs(self) -> dict[str, Any]:
        """What a train stage depends on: every field that changes the weights, the ones added since runs were
        first recorded named only when set (so those runs stay current). How the batch is split into
        micro-batches and whether activations are recomputed change memory and speed, not the objective: they
        are facts of the stage, not inputs."""
        fields = self.model_dump(mode="json", exclude={"micro_batch_size", "gradient_checkpointing"})
        return {name: value for name, value in fields.items() if _LATER_DEFAULTS.get(name, _UNSET) != value}


_UNSET = object()
# Fields added after runs were first recorded, at their defaults (named in stage inputs only when they differ).
_LATER_DEFAULTS: dict[str, Any] = {
    "processes": 1,
    "collation": "padded",
    "quantization": None,
    "scheduler": "linear",
    "adam_betas": [0.9, 0.999],
    "adam_eps": 1e-8,
}


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
    micro_batch_size: int | None = Field(None, ge=1)
    gradient_accumulation_steps: int | None = Field(None, ge=1)
    max_length: int | None = Field(None, ge=16)
    warmup_ratio: float | None = Field(None, ge=0.0, lt=1.0)
    scheduler: Literal["linear", "constant", "cosine"] | None = None
    lora: LoraConfig | None = None

    def given(self) -> dict[str, Any]:
        """The fields set, as overrides of ``training``."""
        return self.model_dump(exclude_none=True)


class JudgeSpec(_Section):
    """One judge: the embedded one (no network), or a model on an OpenAI-compatible server."""

    kind: str = Field(
        "embedded",
        description="embedded, or openai (any compatible server); the registry in traitloop.judge lists the kinds.",
    )
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


class JudgeConfig(_Section):
    """Which judges score trait strength and coherence; they may be different models on different servers."""

    trait: JudgeSpec = Field(default_factory=JudgeSpec)
    coherence: JudgeSpec = Field(default_factory=JudgeSpec)
