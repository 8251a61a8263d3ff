"""The small protocol every training method implements; the loop calls nothing else that differs by method.

A method decides three things: the data a cycle trains on (``build_data``, and the config values and
generations it depends on), how a generation is trained from that data (``train``, from one typed
:class:`TrainJob`), and what it makes and is asked (``chat``: chat answers to questions, or else continuations
of document prefixes, which the judges judge as documents). A method may hand a cycle to another method
(``for_cycle``): DPO seeded by SFT trains generation 0 exactly as SFT does.

What a method needs from the running experiment is :class:`RunContext`, a protocol the loop's run meets: the
methods stand below the loop and never import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from traitloop.config import ExperimentConfig
from traitloop.generate import backend_sections, get_backend
from traitloop.judge import Item, Judge, Judgement
from traitloop.methods._train import OnStep, TrainJob, TrainResult
from traitloop.rundir import TRAIN_DATA, value_hash
from traitloop.traits import Conversation, Document, TraitSpec, load_conversations, load_prompt_pool


@dataclass(frozen=True)
class SeedSet:
    """What a run's method draws on: the seed examples generation 0 trains on, the pool later cycles' prompts
    come from, and the held-out prompts every generation is evaluated on."""

    examples: list[Conversation] | list[Document]
    path: Path
    pool: list[str]
    eval_prompts: list[str]
    eval_inputs: dict[str, Any] = field(default_factory=dict)  # what else an evaluation depends on

    @property
    def what(self) -> str:
        return "documents" if self.examples and isinstance(self.examples[0], Document) else "conversations"


@dataclass(frozen=True)
class Needs:
    """What one cycle of a method asks of memory and data beyond SFT's, for planning a run (``traitloop plan``):
    the methods know their trainers; the plan only adds up."""

    sequences_per_example: int = 1  # sequences one training example puts in a batch (DPO: chosen and rejected)
    answers_per_prompt: int = 1  # answers its data stage samples for each prompt (DPO: two)
    reference_adapter: bool = False  # a frozen second adapter is the loss's reference (DPO continuing k-1)
    teacher: bool = False  # a frozen teacher model beside the student (distillation)
    samples_in_training: bool = False  # the student samples its answers inside training; the data stage only
    # draws prompts (distillation)


class RunContext(Protocol):
    """What a method needs from the running experiment: its config and folder, its seed set and prompt slices,
    the models and judges it has resolved, and sampling as a given generation."""

    config: ExperimentConfig
    folder: Path
    seed_set: SeedSet
    seed_hash: str
    slices: list[list[str]]
    template_options: dict[str, Any]  # the chat template options that apply to the run's model

    @property
    def trait_judge(self) -> Judge: ...

    @property
    def judge_ids(self) -> list[str]: ...

    def coherence_judge(self, nll: Any) -> Judge:
        """The run's coherence judge over ``nll``, the base model's likelihood scorer."""
        ...

    def judged(self, judge: Judge, items: list[Item], what: str) -> list[Judgement]:
        """``judge``'s judgements of ``items``, its progress shown as ``what``."""
        ...

    def model(self, weights: Path | None = None) -> Any:
        """The base model, with ``weights`` (a generation's adapter or full weights) loaded when given."""
        ...

    def tokenizer(self) -> Any: ...

    def sampling_model(self, weights: Path | None = None) -> Any:
        """``model(weights)`` where the backend samples with the run's own model, else None (not loaded)."""
        ...

    def weights(self, cycle: int) -> Path | None:
        """Generation ``cycle``'s weights; None when it is the base model itself."""
        ...

    def weights_hash(self, cycle: int) -> str: ...

    def stage_seed(self, stage: str) -> int: ...

    def answer_as(self, model: Any, generation: int, name: str) -> None:
        """Make ``model`` answer as generation ``generation`` (its adapter loaded beside the model's own as
        ``name``) where the backend samples with the run's own model."""
        ...

    def sample(
        self, model: Any, generation: int | None, prompts: list[Any], stage: str, what: str
    ) -> tuple[list[str], dict[str, float]]:
        """Answers (or continuations) of ``prompts`` as generation ``generation`` (None: the base), seeded by
        ``stage``, and the throughput facts a data stage records."""
        ...


class Method:
    """A training method. Subclasses set ``name`` and override what differs from chat SFT-like defaults."""

    name: ClassVar[str]
    chat: ClassVar[bool] = True  # evaluation asks chat questions; False: it continues document prefixes
    owns: ClassVar[tuple[str, ...]] = ()  # config sections only this method reads (dpo, distill)
    filters_samples: ClassVar[bool] = False  # reads min_coherence, min_trait, max_trait, mix_seed_examples
    facts: ClassVar[tuple[str, ...]] = ()  # training facts of its own, shown in metrics.json and summary.csv
    seed_data_runs_model: ClassVar[bool] = False  # its cycle 0 data stage runs a model (DPO: the base's answers)

    def check_config(self, config: ExperimentConfig) -> None:
        """Raise ``ValueError`` for settings this method would silently ignore; apply its own defaults."""

    def for_cycle(self, config: ExperimentConfig, cycle: int) -> Method:
        """The method that makes and trains cycle ``cycle``'s data (itself, unless it seeds another way)."""
        return self

    def needs(self, config: ExperimentConfig, cycle: int) -> Needs:
        """What cycle ``cycle`` asks of memory and data beyond SFT's (nothing, for SFT-like methods)."""
        return Needs()

    def seed_set(self, trait: TraitSpec, config: ExperimentConfig) -> SeedSet:
        """Chat methods: seed conversations, the prompt pool, and the trait's eval questions."""
        path = config.seed_file or trait.seed_path
        return SeedSet(
            examples=load_conversations(path),
            path=path,
            pool=load_prompt_pool(config.prompt_pool, config.prompt_pool_field),
            eval_prompts=trait.eval_questions,
        )

    def data_inputs(self, run: RunContext, cycle: int) -> dict[str, Any]:
        """The config values cycle ``cycle``'s data depends on, by field name (so a change is named)."""
        raise NotImplementedError

    def data_upstream(self, run: RunContext, cycle: int) -> dict[str, str]:
        """Hashes of the generations cycle ``cycle``'s data comes from: generation k-1 for every later cycle."""
        return {} if cycle == 0 else {"weights": run.weights_hash(cycle - 1)}

    def data_outputs(self, run: RunContext, cycle: int) -> list[str]:
        """The files cycle ``cycle``'s data stage writes in its folder (their hashes are recorded)."""
        return [TRAIN_DATA]

    def build_data(self, run: RunContext, cycle: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Cycle ``cycle``'s training rows (written to its train.jsonl) and the facts its data stage records."""
        raise NotImplementedError

    def train_inputs(self, run: RunContext, cycle: int) -> dict[str, Any]:
        """Config values of this method's own that cycle ``cycle``'s training depends on."""
        return {}

    def train_upstream(self, run: RunContext, cycle: int) -> dict[str, str]:
        """Hashes of generations cycle ``cycle``'s training reads beside its data (a teacher)."""
        return {}

    def job_settings(self, run: RunContext, cycle: int) -> dict[str, Any]:
        """The method's fields of cycle ``cycle``'s :class:`TrainJob` (its reference, its config section)."""
        return {}

    def train(self, job: TrainJob, on_step: OnStep | None = None) -> TrainResult:
        """Train one generation from ``job.data`` and save its weights to ``job.output_dir``."""
        raise NotImplementedError


def slice_inputs(run: RunContext, cycle: int) -> dict[str, Any]:
    """What any later cycle's data depends on: its prompts (by hash), how many, the seed and how it samples."""
    c = run.config
    fields: dict[str, Any] = {
        "prompt_pool": value_hash(run.slices[cycle - 1]),
        "samples_per_cycle": c.samples_per_cycle,
        "seed": c.seed,
        "generation": sampling_inputs(run),
    }
    if c.prompt_sampling != "disjoint":  # named only when not the default, so earlier runs stay current
        fields["prompt_sampling"] = c.prompt_sampling
    return fields


def sampling_inputs(run: RunContext) -> dict[str, Any]:
    """The generation settings a sample depends on, and who samples when it is not the local default."""
    generation = run.config.generation.model_dump(mode="json")
    settings = {k: v for k, v in generation.items() if k not in {*backend_sections(), "chat_template_kwargs"}}
    return {**settings, **backend_inputs(run.config), **template_inputs(run)}


def template_inputs(run: RunContext) -> dict[str, Any]:
    """The chat template options a stage that renders conversations depends on, named only when the model's
    template reads any (so runs of models without such options, made before they existed, stay current)."""
    return {"chat_template_kwargs": run.template_options} if run.template_options else {}


def backend_inputs(config: ExperimentConfig) -> dict[str, Any]:
    """Who samples, when it is not the local default (named only then, so earlier runs stay valid): the
    backend, and for a server the model it serves and where."""
    return get_backend(config.generation.backend).inputs(config.generation)
