"""What every stage of a run shares: the run's resolved inputs, its models, judges and sampling."""

from __future__ import annotations

import contextlib
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from rich.console import Console

from traitloop._progress import Progress
from traitloop.config import ExperimentConfig
from traitloop.generate import Engine, Generator, SamplingParams, get_backend
from traitloop.judge import Item, Judge, Judgement, judge_kind
from traitloop.loop._evals import EvalSet
from traitloop.methods import Method, SeedSet
from traitloop.models import (
    Precision,
    applied_template_options,
    load_model,
    load_tokenizer,
    resolve_precision,
    resolve_training_precision,
)
from traitloop.rundir import (
    BASE,
    TRAIN,
    WEIGHTS,
    Manifest,
    SharedStages,
    cycle_dir_name,
    eval_set_of,
    planned_stages,
    stage_seed,
    weights_id,
)
from traitloop.traits import TraitSpec


@dataclass
class Run:
    """Everything resolved once per run."""

    config: ExperimentConfig
    folder: Path
    manifest: Manifest
    trait: TraitSpec
    method: Method
    base: str
    seed_set: SeedSet
    seed_hash: str
    slices: list[list[str]]  # per cycle 1..N: prompts (chat methods) or document prefixes (sdf)
    main_eval: EvalSet
    console: Console
    progress: Progress
    eval_sets: dict[str, EvalSet] = field(default_factory=dict)  # by name: the config's, then traitloop eval's
    shared: SharedStages | None = None  # a sweep's store: the base model's evaluations, made once for its runs

    def eval_set(self, stage: str) -> EvalSet:
        """What an evaluation stage asks: the main evaluation, or the eval set its name says."""
        name = eval_set_of(stage)
        return self.main_eval if name is None else self.eval_sets[name]

    def planned_stages(self) -> list[str]:
        """Every stage of this run, in the order the loop runs them, its eval sets' included."""
        return planned_stages(self.config.cycles, list(self.eval_sets))

    def method_for(self, cycle: int) -> Method:
        """The method that makes and trains cycle ``cycle`` (DPO seeded by SFT hands cycle 0 to SFT)."""
        return self.method.for_cycle(self.config, cycle)

    def stage_seed(self, stage: str) -> int:
        return stage_seed(self.config.seed, stage)

    @cached_property
    def trait_judge(self) -> Judge:
        spec = self.config.judge.trait
        return judge_kind(spec).trait_judge(spec, self.trait, self.method.chat, self.progress)

    @cached_property
    def trait_ref(self) -> str:
        """Name, version and content hash: what identifies the trait data a stage used."""
        return f"{self.trait.name}@v{self.trait.version}/{self.trait.content_hash()}"

    @cached_property
    def judge_ids(self) -> list[str]:
        """Each judge's id - for a server judge its model, server, template version and scoring mode - so
        a changed judge redoes the evaluations (its cache makes repeated judgements free)."""
        trait, coherence = self.config.judge.trait, self.config.judge.coherence
        return [
            judge_kind(trait).trait_judge_id(trait, self.trait, self.method.chat),
            judge_kind(coherence).coherence_judge_id(coherence, self.config.model),
        ]

    @property
    def chat(self) -> bool:
        """Whether the method works on chat turns (else on raw documents: sdf)."""
        return self.method.chat

    def coherence_judge(self, nll: Any) -> Judge:
        spec = self.config.judge.coherence
        return judge_kind(spec).coherence_judge(spec, lambda: nll, self.config.model)

    def judged(self, judge: Judge, items: list[Item], what: str) -> list[Judgement]:
        """``judge``'s judgements of ``items``, its progress shown as ``what``."""
        with self.progress.task(what, len(items)) as step:
            return judge(items, step)

    def tokenizer(self):
        """The base model's tokenizer, its chat template set to the run's ``generation.chat_template_kwargs``."""
        return load_tokenizer(self.base, self.config.trust_remote_code, self.config.generation.chat_template_kwargs)

    @cached_property
    def template_options(self) -> dict[str, Any]:
        """The chat template options that apply to this model (those its template reads): recorded in the stage
        inputs of every stage that renders a conversation, so a changed option redoes them."""
        return applied_template_options(self.tokenizer().chat_template, self.config.generation.chat_template_kwargs)

    @cached_property
    def precision(self) -> Precision:
        """The device and dtype the config's ``device`` and ``dtype`` resolve to on this machine."""
        return resolve_precision(self.config.device, self.config.dtype)

    @cached_property
    def training_precision(self) -> Precision:
        """Where and in what dtype train stages compute (``models.resolve_training_precision``): the run's
        precision, but bfloat16 under ``dtype: auto`` on a CPU that computes it natively."""
        return resolve_training_precision(self.config.device, self.config.dtype)

    def model(self, weights: Path | None = None):
        return load_model(self.base, weights, trust_remote_code=self.config.trust_remote_code, precision=self.precision)

    def sampling_model(self, weights: Path | None = None):
        """The model a data stage samples with: the base with ``weights`` loaded where the backend samples in
        this process; None where vLLM or a server samples (they load the generation's adapter themselves, and
        the HF model need not be loaded at all)."""
        return self.model(weights) if self.engine.in_process else None

    def weights_dir(self, cycle: int) -> Path:
        """Where generation ``cycle``'s weights are saved."""
        return self.folder / cycle_dir_name(cycle) / WEIGHTS

    def weights(self, cycle: int) -> Path | None:
        """Generation ``cycle``'s trained weights; None when it is the base model itself (a control chain's
        generation 0, which trained nothing)."""
        return None if self.weights_hash(cycle) == BASE else self.weights_dir(cycle)

    def weights_hash(self, cycle: int) -> str:
        """What identifies generation ``cycle``'s weights, as its train stage recorded them."""
        return weights_id(self.manifest.stages[f"{cycle_dir_name(cycle)}/{TRAIN}"])

    @cached_property
    def engine(self) -> Engine:
        """The run's generation backend, opened once: it answers as the base model or as any generation."""
        return get_backend(self.config.generation.backend).open(self.config, self.base, self.precision.facts["dtype"])

    def generator(self, model, generation: int | None) -> Generator:
        """Who answers as generation ``generation`` (None: the base model). The local backend uses ``model``,
        already holding those weights; the others load the generation's adapter themselves, named by its hash."""
        weights = None if generation is None else self.weights(generation)
        name = "" if weights is None else f"traitloop-{self.weights_hash(generation)}"
        return self.engine.generator(model, self.tokenizer(), weights, name)

    def device_for_training(self) -> AbstractContextManager[None]:
        """The generation backend's GPU memory, handed to a training stage for the ``with`` block: vLLM sleeps,
        or is shut down and opened again on next use (``generation.vllm.during_training``); nothing to hand
        when no engine has been opened."""
        engine = self.__dict__.get("engine")
        if engine is None:
            return contextlib.nullcontext()
        how = self.config.generation.vllm.during_training
        if how == "rebuild":
            del self.__dict__["engine"]
        return engine.yielding_device(how)

    def answer_as(self, model, generation: int, name: str) -> None:
        """Make ``model`` answer as generation ``generation`` where the backend samples with the run's model."""
        weights = self.weights(generation)
        if weights is not None:
            self.engine.hold(model, weights, name)

    def sample(
        self, model, generation: int | None, prompts: list[str] | list[list[dict[str, str]]], stage: str, what: str
    ) -> tuple[list[str], dict[str, float]]:
        """Answer chat prompts (a question or a list of turns), or continue document prefixes for sdf, as the
        generation ``generation`` (None: the base; ``model`` holds its weights for the local backend), with the
        generation settings, seeded by ``stage``; returns the texts and the throughput facts a data stage records."""
        tokenizer = self.tokenizer()
        settings = self.config.generation.model_dump(include={"temperature", "top_p", "max_new_tokens", "batch_size"})
        params = SamplingParams(**settings, seed=self.stage_seed(stage))
        generator = self.generator(model, generation)
        with self.progress.task(what, len(prompts)) as step:
            started = time.perf_counter()
            if self.chat:
                chats = [[{"role": "user", "content": p}] if isinstance(p, str) else p for p in prompts]
                texts = generator.generate(chats, params, step)
            else:
                texts = generator.complete(prompts, params, step)
            seconds = time.perf_counter() - started
        tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
        return texts, {"answer_tokens": tokens, "generation_tokens_per_second": round(tokens / seconds, 2)}
