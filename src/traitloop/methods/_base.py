"""The small protocol every training method implements; the loop calls nothing else that differs by method.

A method decides four things: the data a cycle trains on (``build_data``, and the config values and
generations it depends on), how a generation is trained from that data (``train``, from one typed
:class:`TrainJob`), how an evaluation asks (``chat``: chat questions, or else document prefixes to continue)
and which embedded judge fits its answers (``trait_judge``). A method may hand a cycle to another method
(``for_cycle``): DPO seeded by SFT trains generation 0 exactly as SFT does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from traitloop.judge import Judge, embedded_trait_judge, embedded_trait_judge_id
from traitloop.loop._rundir import TRAIN_DATA, value_hash
from traitloop.methods._train import OnStep, TrainJob, TrainResult
from traitloop.traits import Conversation, Document, TraitSpec, load_conversations, load_prompt_pool

if TYPE_CHECKING:
    from traitloop.config import ExperimentConfig
    from traitloop.loop._run import Run


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


class Method:
    """A training method. Subclasses set ``name`` and override what differs from chat SFT-like defaults."""

    name: ClassVar[str]
    chat: ClassVar[bool] = True  # evaluation asks chat questions; False: it continues document prefixes
    owns: ClassVar[tuple[str, ...]] = ()  # config sections only this method reads (dpo, distill)
    filters_samples: ClassVar[bool] = False  # reads min_coherence, min_trait, max_trait, mix_seed_examples
    facts: ClassVar[tuple[str, ...]] = ()  # training facts of its own, shown in metrics.json and summary.csv

    def check_config(self, config: ExperimentConfig) -> None:
        """Raise ``ValueError`` for settings this method would silently ignore; apply its own defaults."""

    def for_cycle(self, config: ExperimentConfig, cycle: int) -> Method:
        """The method that makes and trains cycle ``cycle``'s data (itself, unless it seeds another way)."""
        return self

    def seed_set(self, trait: TraitSpec, config: ExperimentConfig) -> SeedSet:
        """Chat methods: seed conversations, the prompt pool, and the trait's eval questions."""
        path = config.seed_file or trait.seed_path
        return SeedSet(
            examples=load_conversations(path),
            path=path,
            pool=load_prompt_pool(config.prompt_pool, config.prompt_pool_field),
            eval_prompts=trait.eval_questions,
        )

    def data_inputs(self, run: Run, cycle: int) -> dict[str, Any]:
        """The config values cycle ``cycle``'s data depends on, by field name (so a change is named)."""
        raise NotImplementedError

    def data_upstream(self, run: Run, cycle: int) -> dict[str, str]:
        """Hashes of the generations cycle ``cycle``'s data comes from: generation k-1 for every later cycle."""
        return {} if cycle == 0 else {"weights": run.weights_hash(cycle - 1)}

    def data_outputs(self, run: Run, cycle: int) -> list[str]:
        """The files cycle ``cycle``'s data stage writes in its folder (their hashes are recorded)."""
        return [TRAIN_DATA]

    def build_data(self, run: Run, cycle: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Cycle ``cycle``'s training rows (written to its train.jsonl) and the facts its data stage records."""
        raise NotImplementedError

    def train_inputs(self, run: Run, cycle: int) -> dict[str, Any]:
        """Config values of this method's own that cycle ``cycle``'s training depends on."""
        return {}

    def train_upstream(self, run: Run, cycle: int) -> dict[str, str]:
        """Hashes of generations cycle ``cycle``'s training reads beside its data (a teacher)."""
        return {}

    def job_settings(self, run: Run, cycle: int) -> dict[str, Any]:
        """The method's fields of cycle ``cycle``'s :class:`TrainJob` (its reference, its config section)."""
        return {}

    def train(self, job: TrainJob, on_step: OnStep | None = None) -> TrainResult:
        """Train one generation from ``job.data`` and save its weights to ``job.output_dir``."""
        raise NotImplementedError

    def trait_judge(self, trait: TraitSpec, fit: bool = True) -> tuple[Judge | None, str]:
        """The embedded trait judge for this method's answers and its id (``fit=False``: the id alone, cheap)."""
        return (embedded_trait_judge(trait) if fit else None), embedded_trait_judge_id(trait)


def slice_inputs(run: Run, cycle: int) -> dict[str, Any]:
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


def sampling_inputs(run: Run) -> dict[str, Any]:
    """The generation settings a sample depends on, and who samples when it is not the local default."""
    generation = run.config.generation.model_dump(mode="json")
    settings = {k: v for k, v in generation.items() if k not in ("backend", "server", "vllm")}
    return {**settings, **backend_inputs(run)}


def backend_inputs(run: Run) -> dict[str, Any]:
    """Who samples, when it is not the local default (named only then, so earlier runs stay valid): the
    backend, and for a server the model it serves and where."""
    generation = run.config.generation
    if generation.backend == "local":
        return {}
    server = generation.server
    where = {"server": {"model": server.model, "base_url": server.base_url}} if server else {}
    return {"backend": generation.backend, **where}
