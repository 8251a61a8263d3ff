"""A run planned before any work: every stage, what it works through, and whether its memory fits the GPU.

Nothing is loaded or trained. The model's config.json alone gives its shape (``traitloop.models.model_shape``:
the model built on the meta device); the trait's files, the seed examples and the prompt pool give each
stage's data; ``_memory`` turns both into each stage's peak, item by item. A stage fits when its peak is at
most the GPU memory given (``--gpu-memory``), or else the free memory of the GPU present. On a CPU with no
memory given there is nothing to check: the plan still says what each stage holds, in float32.

``traitloop run`` refuses a config that will not fit, naming the stage and the settings to change, unless
``--no-memory-check``; ``largest_micro_batch`` is the largest micro-batch whose training fits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from traitloop.config import ExperimentConfig
from traitloop.errors import UserError
from traitloop.generate import get_backend
from traitloop.loop._memory import weights_bytes
from traitloop.loop._plan_stages import (
    PlanInputs,
    StagePlan,
    Target,
    TokenCounter,
    data_stage,
    eval_stage,
    gradient_checkpointing,
    local_tokenizer,
    micro_batch,
    train_stage,
)
from traitloop.loop._resolve import resolve
from traitloop.models import ModelShape, model_shape
from traitloop.rundir import config_stages, eval_set_of, stage_cycle, stage_kind

GIB = 1 << 30
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}  # fmt: skip


def parse_memory(size: str | int) -> int:
    """Bytes of a size such as ``80GiB``, ``80GB`` or ``40000MiB`` (GiB, MiB: powers of 2; GB, MB: of 10)."""
    if isinstance(size, int) and not isinstance(size, bool):
        value, unit = size, ""
    else:
        found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*", str(size), re.IGNORECASE)
        if not found:
            raise UserError(f"--gpu-memory: expected a size such as 80GiB, 80GB or 40000MiB, got {size!r}")
        value, unit = float(found[1]), (found[2] or "").lower()
    if unit == "" and value < (1 << 20):
        raise UserError(f"--gpu-memory: {size!r} has no unit; give one, as in 80GiB, 80GB or 40000MiB")
    if value <= 0:
        raise UserError(f"--gpu-memory: {size!r} is no memory at all")
    return int(value * _UNITS[unit])


def gib(size: int) -> str:
    return f"{size / GIB:,.1f} GiB"


@dataclass(frozen=True)
class Plan:
    """A planned run: where it computes, its model, and every stage with its data and peak memory."""

    name: str
    method: str
    model: ModelShape
    target: Target
    stages: list[StagePlan]
    tokens_counted: bool  # with the model's tokenizer; else estimated from characters
    full_length: dict[bool, int] = field(default_factory=dict)  # largest training batch all at max_length
    full_length_batch: tuple[int, int] | None = None  # (sequences, max_length) of that batch
    problems: list[str] = field(default_factory=list)  # what stops the run before any memory matters
    advice: dict[str, str] = field(default_factory=dict)  # stage -> the settings that would make it fit

    @property
    def peak(self) -> StagePlan | None:
        return max((s for s in self.stages if s.memory), key=lambda s: s.peak, default=None)

    @property
    def fits(self) -> bool | None:
        """True: every stage fits; False: one does not; None: nothing to check (no GPU, no memory given)."""
        verdicts = [s.fits for s in self.stages if s.fits is not None]
        return None if not verdicts else all(verdicts)

    def refusal(self, memory_only: bool = False) -> str | None:
        """Why this run cannot go ahead: the config's problems, or the first stage that does not fit and what
        to change. None when nothing stands in the way."""
        if self.problems and not memory_only:
            return "; ".join(self.problems)
        failing = [s for s in self.stages if s.fits is False]
        if not failing:
            return None
        first = failing[0]
        more = f" ({len(failing) - 1} more stages do not fit either)" if len(failing) > 1 else ""
        return (
            f"stage {first.stage} needs about {gib(first.peak)} of GPU memory, more than the "
            f"{gib(self.target.budget or 0)} available ({self.target.source}){more}: {self.advice[first.stage]}"
        )


def plan_target(config: ExperimentConfig, gpu_memory: str | int | None = None) -> Target:
    """Where a run of ``config`` computes, in which dtype, and what each stage may hold: ``gpu_memory`` when
    given (the run then plans for a GPU), else the free memory of the GPU present, else nothing (a CPU)."""
    budget = None if gpu_memory is None else parse_memory(gpu_memory)
    if config.device == "cpu":
        return Target("cpu", 2 if config.dtype == "bfloat16" else 4, None, None, "device: cpu, no GPU used")
    here = torch.cuda.is_available()
    no_bf16 = config.dtype == "auto" and here and not torch.cuda.is_bf16_supported()
    dtype = 4 if config.dtype == "float32" or no_bf16 else 2
    if budget is not None:
        return Target("cuda", dtype, budget, budget, f"--gpu-memory {gpu_memory}")
    if here:
        free, total = torch.cuda.mem_get_info()
        return Target("cuda", dtype, free, total, f"free on {torch.cuda.get_device_name()}")
    if config.device == "cuda":
        return Target("cuda", dtype, None, None, "no GPU on this machine to check against")
    return Target("cpu", 2 if config.dtype == "bfloat16" else 4, None, None, "no GPU here: the run uses the CPU")


def _inputs(config: ExperimentConfig, target: Target) -> tuple[PlanInputs, list[str]]:
    """What the run would resolve before any work (its model's shape for its weights), and its problems."""
    run = resolve(config)
    inputs = PlanInputs(
        config=config, method=run.method, shape=model_shape(config.model, config.trust_remote_code), target=target,
        seed_set=run.seed_set, slices=run.slices, eval_sets=[run.main_eval, *run.eval_sets.values()],
        tokens=TokenCounter(local_tokenizer(config.model, config.trust_remote_code)),
    )  # fmt: skip
    return inputs, run.problems + _engine_problems(inputs)


def _engine_problems(inputs: PlanInputs) -> list[str]:
    """A generation engine's share of the GPU that cannot hold the model's weights and one answer's KV cache."""
    engine = inputs.engine_bytes()
    c, shape, b = inputs.config, inputs.shape, inputs.target.dtype_bytes
    need = weights_bytes(shape, b) + (c.generation.max_new_tokens + 1024) * shape.kv_bytes_per_token(b)
    if not engine or engine >= need:
        return []
    section = get_backend(c.generation.backend).settings
    return [
        f"generation.{section}.gpu_memory_utilization: its share of the GPU ({gib(engine)}) cannot hold the model's "
        f"weights and a KV cache ({gib(need)} at least); raise it"
    ]


def _divisors(n: int) -> list[int]:
    return [d for d in range(n, 0, -1) if n % d == 0]


def _auto_micro(inputs: PlanInputs, cycle: int) -> int | None:
    """The micro-batch the trainer will choose: the largest that fits, where ``training.micro_batch_size`` is
    a field left unset (None) and there is a budget; None where the config decides it."""
    training = inputs.config.training_for(cycle)
    if training.micro_batch_size is not None or inputs.target.budget is None:
        return None
    return _largest_fitting(inputs, cycle, inputs.target.budget) or 1


def _largest_fitting(inputs: PlanInputs, cycle: int, budget: int, checkpointing: bool | None = None) -> int | None:
    training = inputs.config.training_for(cycle)
    for micro in _divisors(training.batch_size // training.processes):
        if train_stage(inputs, cycle, micro, checkpointing).peak <= budget:
            return micro
    return None


def _stage(inputs: PlanInputs, stage: str) -> StagePlan:
    kind, cycle = stage_kind(stage), stage_cycle(stage)
    if kind == "data":
        return data_stage(inputs, cycle)
    if kind == "train":
        return train_stage(inputs, cycle, _auto_micro(inputs, cycle))
    name = eval_set_of(stage)
    return eval_stage(inputs, cycle, next(e for e in inputs.eval_sets if e.name == name))


def _advice(inputs: PlanInputs, stage: StagePlan) -> str:
    """The settings that would make ``stage`` fit, with what each would take where the plan can say."""
    c, budget, cycle = inputs.config, inputs.target.budget or 0, stage_cycle(stage.stage)
    backend = get_backend(c.generation.backend)
    engine = f"generation.{backend.settings}.gpu_memory_utilization" if inputs.engine_bytes() else None
    if stage_kind(stage.stage) != "train":
        section = "evaluation" if stage_kind(stage.stage) == "eval" else "generation"
        lower = [f"{section}.batch_size", f"{section}.max_new_tokens", *([engine] if engine else [])]
        return f"lower {', '.join(lower)}"
    options = []
    training = c.training_for(cycle)
    on = gradient_checkpointing(c, cycle, inputs.target.device)
    if not on and stage.checkpointing.get(True, budget + 1) <= budget:
        options.append(f"set training.gradient_checkpointing: true (it would take {gib(stage.checkpointing[True])})")
    micro = _largest_fitting(inputs, cycle, budget, on)
    if micro is None and not on:
        micro = _largest_fitting(inputs, cycle, budget, True)
    if micro and micro < training.batch_size // training.processes:
        options.append(f"set training.micro_batch_size: {micro} (the largest that fits)")
    if engine and not backend.releases_gpu_for_training(c.generation):
        options.append(f"lower {engine} (the engine keeps its share through training)")
    options.append("lower training.max_length" + (" or training.batch_size" if not micro else ""))
    return "; or ".join(options)


def plan_run(config: ExperimentConfig, gpu_memory: str | int | None = None) -> Plan:
    """Plan a run of ``config``: each stage's data and peak memory, and whether it fits ``gpu_memory`` (bytes,
    or a size such as ``80GiB``; default: the free memory of the GPU present, if any)."""
    target = plan_target(config, gpu_memory)
    inputs, problems = _inputs(config, target)
    stages = []
    for name in config_stages(config):
        stage = _stage(inputs, name)
        fits = None if target.budget is None or not stage.memory else stage.peak <= target.budget
        stages.append(StagePlan(**{**stage.__dict__, "fits": fits}))
    full, batch = _full_length(inputs)
    return Plan(
        name=config.name or "run", method=config.method, model=inputs.shape, target=target, stages=stages,
        tokens_counted=inputs.tokens.exact, full_length=full, full_length_batch=batch, problems=problems,
        advice={s.stage: _advice(inputs, s) for s in stages if s.fits is False},
    )  # fmt: skip


def _full_length(inputs: PlanInputs) -> tuple[dict[bool, int], tuple[int, int] | None]:
    """The largest training batch of the run with every sequence ``training.max_length`` long, with
    checkpointing on and off: the worst a batch of that size can hold, whatever the data."""
    c = inputs.config
    cycles = [k for k in range(c.cycles + 1) if (k or c.seed_examples) and not _samples_in_training(inputs, k)]
    if not cycles:
        return {}, None
    cycle = max(cycles, key=lambda k: micro_batch(c, k) * c.training_for(k).max_length)
    stages = {on: train_stage(inputs, cycle, None, on, full_length=True) for on in (True, False)}
    return {on: stage.peak for on, stage in stages.items()}, (stages[True].micro_batch, stages[True].sequence_length)


def _samples_in_training(inputs: PlanInputs, cycle: int) -> bool:
    c = inputs.config
    return inputs.method.for_cycle(c, cycle).needs(c, cycle).samples_in_training


def largest_micro_batch(config: ExperimentConfig, cycle: int, gpu_memory: str | int | None = None) -> int:
    """The largest micro-batch (examples one process trains on in a step: a divisor of its share of
    ``training.batch_size``) whose estimated peak fits ``gpu_memory`` (default: the free memory of the GPU
    present), with the config's checkpointing. Where there is nothing to check against, the whole share. A
    UserError when not even one example a step fits."""
    target = plan_target(config, gpu_memory)
    training = config.training_for(cycle)
    if target.budget is None:
        return training.batch_size // training.processes
    inputs, _ = _inputs(config, target)
    found = _largest_fitting(inputs, cycle, target.budget)
    if found is None:
        one = train_stage(inputs, cycle, 1)
        raise UserError(
            f"cycle {cycle}'s training needs about {gib(one.peak)} even one example a step, more than the "
            f"{gib(target.budget)} available ({target.source}): {_advice(inputs, one)}"
        )
    return found


def check_memory(config: ExperimentConfig, gpu_memory: str | int | None = None) -> Plan | None:
    """Refuse (a UserError) a run whose plan does not fit the GPU, naming the stage and the settings to
    change. Nothing is planned where there is nothing to check against (a CPU, with no memory given)."""
    if plan_target(config, gpu_memory).budget is None:
        return None
    plan = plan_run(config, gpu_memory)
    refusal = plan.refusal(memory_only=True)
    if refusal:
        raise UserError(f"{refusal}; or run with --no-memory-check to try anyway")
    return plan
