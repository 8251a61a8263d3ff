"""Each stage of a planned run: what it works through (examples, prompts, tokens), and what it holds at its peak.

Nothing is loaded but the trait's files, the seed examples and the prompt pool, and the tokenizer where it is
on this machine. Sequence lengths come from the data the run would use: a training batch is padded to its
longest sequence, so a stage's peak is that of the batch holding its longest example, capped at
``training.max_length``. Generation 0 trains on seed examples whose lengths are counted; a later cycle on
answers of at most ``max_new_tokens`` to its own slice of prompts, whose longest is counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from traitloop.config import ExperimentConfig
from traitloop.generate import get_backend
from traitloop.loop._evals import EvalSet
from traitloop.loop._memory import (
    CUDA_OVERHEAD,
    MemoryItem,
    TrainShape,
    generation_memory,
    scoring_memory,
    training_memory,
    weights_bytes,
)
from traitloop.methods import Method, SeedSet
from traitloop.models import REGISTRY, ModelShape, is_cached, resolve_model
from traitloop.rundir import cycle_dir_name

CHARS_PER_TOKEN = 4  # English text, when the tokenizer is not on this machine
TOKENS_PER_TURN = 8  # the chat template's markup around each turn, likewise


@dataclass(frozen=True)
class Target:
    """Where a plan's run computes and how much memory each stage may hold there."""

    device: str  # cuda or cpu
    dtype_bytes: int  # 2: bfloat16, 4: float32
    budget: int | None  # bytes a stage may hold (None: nothing to check against)
    total: int | None  # the GPU's whole memory: what vLLM's gpu_memory_utilization is a share of
    source: str  # where the budget comes from, in words


@dataclass(frozen=True)
class StagePlan:
    """One stage of a planned run: what it processes and its estimated peak memory, item by item."""

    stage: str
    what: str
    examples: int | None = None  # examples trained on, or copied into the training set
    prompts: int | None = None  # prompts answered (or drawn, for distillation)
    tokens: int = 0  # at most this many tokens trained on (every epoch) or generated
    micro_batch: int | None = None  # sequences one training step holds (DPO: both answers of each pair)
    sequence_length: int | None = None  # tokens of the longest sequence a batch is padded to
    memory: list[MemoryItem] = field(default_factory=list)
    checkpointing: dict[bool, int] = field(default_factory=dict)  # a train stage's peak with checkpointing on, off
    fits: bool | None = None  # None: no budget to check against, or a stage that holds no model

    @property
    def peak(self) -> int:
        return sum(item.bytes for item in self.memory)


class TokenCounter:
    """Tokens of chats and texts: counted with the model's tokenizer where it is on this machine, else estimated
    from characters (about four a token in English text, and a few a turn for the chat template)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._memo: dict[Any, int] = {}

    @property
    def exact(self) -> bool:
        return self.tokenizer is not None

    def chat(self, messages: list[dict[str, str]], generation_prompt: bool = False) -> int:
        key = (tuple((m["role"], m["content"]) for m in messages), generation_prompt)
        if key not in self._memo:
            self._memo[key] = self._chat(messages, generation_prompt)
        return self._memo[key]

    def _chat(self, messages: list[dict[str, str]], generation_prompt: bool) -> int:
        if self.tokenizer is not None and self.tokenizer.chat_template:
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt)
            return len(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
        return sum(self._estimate(m["content"]) + TOKENS_PER_TURN for m in messages) + TOKENS_PER_TURN

    def text(self, text: str) -> int:
        if self.tokenizer is None:
            return self._estimate(text)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @staticmethod
    def _estimate(text: str) -> int:
        return math.ceil(len(text) / CHARS_PER_TOKEN)


def local_tokenizer(name: str, trust_remote_code: bool = False) -> Any:
    """The model's tokenizer where it is on this machine (a built-in model already converted, a local folder,
    the hub's local cache); None elsewhere: planning fetches nothing but config.json."""
    from transformers import AutoTokenizer

    if name in REGISTRY and not is_cached(name):
        return None
    try:
        source = resolve_model(name)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True, trust_remote_code=trust_remote_code)
    except Exception:  # no tokenizer there, or not in the hub's cache
        return None
    return tokenizer if len(tokenizer) > 256 else None  # a folder with config.json alone gives an empty one


@dataclass
class PlanInputs:
    """What a run of ``config`` would resolve before any work, but its model: the data, and the model's shape."""

    config: ExperimentConfig
    method: Method
    shape: ModelShape
    target: Target
    seed_set: SeedSet
    slices: list[list[str]]
    eval_sets: list[EvalSet]  # the main evaluation first
    tokens: TokenCounter

    def seed_lengths(self, examples: list[Any]) -> tuple[int, int]:
        """(prompt, whole) tokens of the longest of ``examples`` (a document's prompt is empty)."""
        longest = (0, 0)
        for example in examples:
            if hasattr(example, "answer"):
                prompt = self.tokens.chat(example.prompt, generation_prompt=True)
                whole = self.tokens.chat([*example.prompt, {"role": "assistant", "content": example.answer}])
            else:
                prompt, whole = 0, self.tokens.text(example.text) + 1  # + EOS
            longest = max(longest, (prompt, whole), key=lambda pair: pair[1])
        return longest

    def prompt_length(self, prompts: list[str] | list[list[dict[str, str]]]) -> int:
        """Tokens of the longest of ``prompts`` as the model sees them (chat turns, or a document's opening)."""
        if not self.method.chat:
            return max((self.tokens.text(p) for p in prompts), default=0)  # type: ignore[arg-type]
        chats = [[{"role": "user", "content": p}] if isinstance(p, str) else p for p in prompts]
        return max((self.tokens.chat(c, generation_prompt=True) for c in chats), default=0)

    def engine_bytes(self) -> int:
        """GPU memory the generation backend's engine keeps for as long as the run lives (vLLM's share)."""
        share = get_backend(self.config.generation.backend).gpu_share(self.config.generation)
        return int(share * self.target.total) if self.target.total and self.target.device == "cuda" else 0

    def weights(self) -> MemoryItem:
        b = self.target.dtype_bytes
        return MemoryItem(f"weights ({'bfloat16' if b == 2 else 'float32'})", weights_bytes(self.shape, b))

    def sampling(self, batch: int, prompt: int, new_tokens: int) -> list[MemoryItem]:
        """What sampling holds: vLLM's engine share, or the run's own model's KV cache and work."""
        engine = self.engine_bytes()
        if engine:
            share = get_backend(self.config.generation.backend).gpu_share(self.config.generation)
            return [MemoryItem(f"generation engine ({share:.2f} of the GPU: weights, KV cache)", engine)]
        return generation_memory(self.shape, self.target.dtype_bytes, batch, prompt, new_tokens)

    def overhead(self) -> list[MemoryItem]:
        return [MemoryItem("CUDA context and workspaces", CUDA_OVERHEAD)] if self.target.device == "cuda" else []


def data_stage(inputs: PlanInputs, cycle: int) -> StagePlan:
    """Cycle ``cycle``'s data: seed examples copied, or prompts answered by generation k-1 (the base, for
    DPO's seed pairs)."""
    c = inputs.config
    stage = f"{cycle_dir_name(cycle)}/data"
    method = inputs.method.for_cycle(c, cycle)
    needs = method.needs(c, cycle)
    if cycle == 0 and c.seed_examples == 0:
        return StagePlan(stage, "control chain: no seed data (generation 0 is the base model)")
    if cycle == 0 and not method.seed_data_runs_model:
        return StagePlan(stage, f"copies {c.seed_examples} seed examples", examples=c.seed_examples)
    if needs.samples_in_training:
        return StagePlan(stage, f"draws {c.samples_per_cycle} prompts", prompts=c.samples_per_cycle)
    prompts = inputs.seed_set.examples[: c.seed_examples] if cycle == 0 else inputs.slices[cycle - 1]
    chats = [p.prompt for p in prompts] if cycle == 0 else prompts  # type: ignore[union-attr]
    rounds = c.max_sampling_rounds if c.sampling_filters() else 1
    answers = len(chats) * needs.answers_per_prompt * rounds
    who = "the base" if cycle == 0 else f"gen {cycle - 1}"
    longest = inputs.prompt_length(chats)
    batch = min(c.generation.batch_size, answers)
    memory = [inputs.weights(), *inputs.sampling(batch, longest, c.generation.max_new_tokens)]
    if c.min_coherence is not None:
        memory.append(scoring_memory(inputs.shape, inputs.target.dtype_bytes, longest, c.generation.max_new_tokens))
    return StagePlan(
        stage, f"{who} answers {len(chats)} prompts" + (f" ({answers} answers)" if answers != len(chats) else ""),
        prompts=len(chats), tokens=answers * c.generation.max_new_tokens, memory=memory + inputs.overhead(),
    )  # fmt: skip


def train_lengths(inputs: PlanInputs, cycle: int) -> tuple[int, int, int]:
    """(examples, longest sequence, its tokens the loss falls on) of cycle ``cycle``'s training."""
    c = inputs.config
    method = inputs.method.for_cycle(c, cycle)
    needs = method.needs(c, cycle)
    new = c.generation.max_new_tokens
    if cycle == 0:
        prompt, whole = inputs.seed_lengths(inputs.seed_set.examples[: c.seed_examples])
        if method.seed_data_runs_model:  # the base model's answers are trained on (rejected) too
            whole = max(whole, prompt + new + 1)
        examples = c.seed_examples
    else:
        prompt = inputs.prompt_length(inputs.slices[cycle - 1])
        whole = prompt + new + 1  # + EOS
        examples = c.samples_per_cycle + c.mix_seed_examples
        if c.mix_seed_examples:
            pool = inputs.seed_set.examples[: c.seed_examples] if c.mix_from == "seeded" else inputs.seed_set.examples
            whole = max(whole, inputs.seed_lengths(pool)[1])
    if needs.samples_in_training:  # the student's own answers to the prompts: max_length does not apply
        return examples, prompt + new, new
    length = min(whole, c.training_for(cycle).max_length)
    return examples, length, length - min(prompt, length - 1) if method.chat else length


def train_stage(
    inputs: PlanInputs,
    cycle: int,
    micro: int | None = None,
    checkpointing: bool | None = None,
    full_length: bool = False,
) -> StagePlan:
    """Cycle ``cycle``'s training at ``micro`` examples a step (default: the run's) with ``checkpointing``
    (default: the run's); with ``full_length``, as if every sequence were ``training.max_length`` long."""
    c = inputs.config
    stage = f"{cycle_dir_name(cycle)}/train"
    if cycle == 0 and c.seed_examples == 0:
        return StagePlan(stage, "control chain: generation 0 is the base model, nothing trained")
    training = c.training_for(cycle)
    needs = inputs.method.for_cycle(c, cycle).needs(c, cycle)
    examples, length, labels = train_lengths(inputs, cycle)
    if full_length:
        length = labels = training.max_length
    micro = micro or micro_batch(c, cycle)
    sequences = micro * needs.sequences_per_example
    target = inputs.target
    engine = inputs.engine_bytes()
    holds_engine = engine and not get_backend(c.generation.backend).releases_gpu_for_training(c.generation)

    def peak_items(checkpoints: bool) -> list[MemoryItem]:
        shape = TrainShape(
            device=target.device, dtype_bytes=target.dtype_bytes, sequences=sequences, length=length,
            label_tokens=sequences * labels, checkpointing=checkpoints, full_finetune=training.full_finetune,
            lora_r=training.lora.r, lora_targets=training.lora.target_modules,
            quantized=training.quantization == "4bit",
            reference_adapter=needs.reference_adapter, teacher=needs.teacher,
            generated_tokens=c.generation.max_new_tokens if needs.samples_in_training else 0,
        )  # fmt: skip
        items = training_memory(inputs.shape, shape)
        if holds_engine:
            items.append(MemoryItem("generation engine, kept through training", engine))
        return items + inputs.overhead()

    chosen = checkpointing if checkpointing is not None else gradient_checkpointing(c, cycle, target.device)
    steps = math.ceil(examples / training.batch_size) * training.epochs
    return StagePlan(
        stage,
        f"{examples} examples x {training.epochs:g} epochs, {math.ceil(steps)} steps",
        examples=examples,
        tokens=int(examples * needs.sequences_per_example * length * training.epochs),
        micro_batch=sequences,
        sequence_length=length,
        memory=peak_items(chosen),
        checkpointing={on: sum(i.bytes for i in peak_items(on)) for on in (True, False)},
    )


def eval_stage(inputs: PlanInputs, cycle: int | None, eval_set: EvalSet) -> StagePlan:
    """Generation ``cycle``'s (None: the base model's) answers to ``eval_set``, scored."""
    c = inputs.config
    evaluation = c.evaluation
    answers = len(eval_set.questions) * evaluation.eval_samples
    asked = eval_set.chats(eval_set.questions) if inputs.method.chat else eval_set.questions
    longest = inputs.prompt_length(asked)
    memory = [inputs.weights()]
    if cycle is not None and c.training.full_finetune:  # a full model beside the base that scores likelihoods
        memory.append(MemoryItem("the base model again, for likelihoods", memory[0].bytes))
    memory += inputs.sampling(min(evaluation.batch_size, answers), longest, evaluation.max_new_tokens)
    memory.append(scoring_memory(inputs.shape, inputs.target.dtype_bytes, longest, evaluation.max_new_tokens))
    who = "the base" if cycle is None else f"gen {cycle}"
    on = f" ({eval_set.name})" if eval_set.name else ""
    return StagePlan(
        eval_set.stage(cycle),
        f"{who} answers {len(eval_set.questions)} questions x {evaluation.eval_samples}{on}",
        prompts=len(eval_set.questions), tokens=answers * evaluation.max_new_tokens, memory=memory + inputs.overhead(),
    )  # fmt: skip


def micro_batch(config: ExperimentConfig, cycle: int) -> int:
    """Examples one process trains on in a step: ``training.micro_batch_size`` where it is set, else its share
    of ``training.batch_size``."""
    training = config.training_for(cycle)
    return training.micro_batch_size or training.batch_size // training.processes


def gradient_checkpointing(config: ExperimentConfig, cycle: int, device: str) -> bool:
    """``training.gradient_checkpointing``: unset (None) means on when training on CUDA, as the trainer decides
    (``methods``' ``uses_checkpointing``)."""
    chosen = config.training_for(cycle).gradient_checkpointing
    return device == "cuda" if chosen is None else chosen
