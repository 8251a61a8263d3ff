"""Before and after a run: ``plan`` (every stage's data and memory, before any work) and ``export`` (a
finished generation as a standalone Hugging Face folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from traitloop.cli._shared import api, console
from traitloop.errors import UserError

GIB = 1 << 30
GPU_MEMORY_HELP = "GPU memory to plan for: 80GiB, 80GB, 40000MiB (default: the free memory of the GPU present)."


def _gib(size: int) -> str:
    return f"{size / GIB:,.1f} GiB"


def _show(plan: Any) -> None:
    """A ``traitloop.loop.Plan``: the model, the budget, a row per stage, where the memory goes, the verdict."""
    model, target = plan.model, plan.target
    console.print(
        f"[bold]{plan.name}[/] ({plan.method}): {model.name}, {model.parameters / 1e9:.2f}B parameters "
        f"({model.model_type}, {model.layers} layers, hidden {model.hidden}, vocabulary {model.vocab:,})",
        highlight=False,
    )
    budget = f"{_gib(target.budget)} ({target.source})" if target.budget else target.source
    counted = "counted with its tokenizer" if plan.tokens_counted else "estimated from characters (no tokenizer here)"
    dtype = "bfloat16" if target.dtype_bytes == 2 else "float32"
    console.print(f"on {target.device} in {dtype}: {budget}; tokens {counted}", highlight=False)
    table = Table()
    table.add_column("stage", no_wrap=True)
    table.add_column("work")
    for column in ("tokens", "batch", "peak", "checkpointing on / off"):
        table.add_column(column, justify="right")
    table.add_column("fits")
    for stage in plan.stages:
        batch = f"{stage.micro_batch} x {stage.sequence_length:,}" if stage.micro_batch else ""
        ckpt = " / ".join(_gib(stage.checkpointing[on]) for on in (True, False)) if stage.checkpointing else ""
        fits = {True: "[green]yes[/]", False: "[red]no[/]", None: ""}[stage.fits]
        peak = _gib(stage.peak) if stage.memory else ""
        tokens = f"≤ {stage.tokens:,}" if stage.tokens else ""
        table.add_row(stage.stage, stage.what, tokens, batch, peak, ckpt, fits)
    console.print(table)
    for kind in ("data", "train", "eval"):
        stages = [s for s in plan.stages if s.memory and s.stage.endswith(f"/{kind}")]
        if stages:
            top = max(stages, key=lambda s: s.peak)
            items = ", ".join(f"{item.name} {_gib(item.bytes)}" for item in top.memory)
            console.print(f"  {top.stage}: {items}", highlight=False)
    if plan.full_length_batch:
        sequences, length = plan.full_length_batch
        console.print(
            f"  a batch of {sequences} x {length:,} tokens (every sequence training.max_length long) would take "
            f"{_gib(plan.full_length[True])} with gradient checkpointing, {_gib(plan.full_length[False])} without",
            highlight=False,
        )
    if plan.fits:
        console.print(f"[green]fits:[/] every stage fits {_gib(target.budget or 0)} ({target.source})", highlight=False)
    elif plan.fits is None:
        console.print("nothing to check against: give --gpu-memory SIZE (such as 80GiB) to plan for a GPU of that size")


def plan(
    config: Annotated[Path, typer.Argument(help="Experiment config or sweep (YAML), or a sweep folder.")],
    gpu_memory: Annotated[str | None, typer.Option("--gpu-memory", help=GPU_MEMORY_HELP)] = None,
    set_: Annotated[list[str], typer.Option("--set", help="Override a field: --set cycles=4")] = [],  # noqa: B006
) -> None:
    """Plan a run before any work: every stage's data, its estimated peak memory, and whether it fits the GPU."""
    plans = api().plan(config, gpu_memory, set_)
    for one in plans:
        _show(one)
    refusals = [(one.name, one.refusal()) for one in plans if one.refusal()]
    if refusals:
        raise UserError("; ".join(f"{name}: {why}" if len(plans) > 1 else str(why) for name, why in refusals))


def export(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    generation: Annotated[int, typer.Option(help="The generation (cycle) to export.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The folder to write.")],
    merge: Annotated[bool, typer.Option(help="Merge the adapter into the base: full weights.")] = False,
    force: Annotated[bool, typer.Option(help="Replace an output folder that is not empty.")] = False,
) -> None:
    """Write a finished generation as a standalone Hugging Face folder (its adapter, or merged weights)."""
    folder = api().export(run_dir, generation, output, merge=merge, force=force)
    what = "merged weights" if merge else "adapter"
    console.print(f"generation {generation} ({what}, with the tokenizer): {folder}", highlight=False)
