"""What each stage of a run depends on, by config field name, and what a changed config means for a run folder.

A stage's recorded inputs name config fields (``training.learning_rate``), so a run started again with another
config is refused naming the fields that changed and the first stage they affect, or, with ``--force``, redone
from there with what it replaces moved aside.
"""

from __future__ import annotations

from typing import Any

from traitloop.config import config_to_dict
from traitloop.errors import UserError
from traitloop.loop._run import Run
from traitloop.methods import backend_inputs, template_inputs
from traitloop.rundir import Manifest, eval_set_of, planned_stages, stage_cycle, stage_kind, supersede


def config_inputs(run: Run, stage: str) -> dict[str, Any]:
    """The config values a stage depends on, by field name, so a change can be reported by name."""
    c = config_to_dict(run.config)
    cycle = stage_cycle(stage)
    kind = stage_kind(stage)
    if kind == "eval":
        # which suites and contexts the run also asks are the eval sets' own inputs, not the main evaluation's
        evaluation = {k: v for k, v in c["evaluation"].items() if k not in ("suites", "contexts", "context_file")}
        if evaluation["projection"]:  # named only when off, so runs made before it existed stay current
            del evaluation["projection"]
        fields = {"trait": run.trait_ref, "evaluation": evaluation, "seed": c["seed"]}
        generation = {**backend_inputs(run.config), **template_inputs(run)}
        if generation:
            fields["generation"] = generation
        fields.update(run.seed_set.eval_inputs)  # sdf evaluates document prefixes, not the chat questions
        fields.update(run.eval_set(stage).inputs())
        return {"model": c["model"], **fields} if cycle is None else fields
    if kind == "train":
        return _train_inputs(run, cycle)
    return run.method_for(cycle).data_inputs(run, cycle)


def _train_inputs(run: Run, cycle: int) -> dict[str, Any]:
    c = run.config
    training = c.training_for(cycle).stage_inputs()
    fields = {"model": c.model, "method": c.method, "training": training, "seed": c.seed, **template_inputs(run)}
    if cycle:
        fields["regime"] = c.regime
    return {**fields, **run.method_for(cycle).train_inputs(run, cycle)}


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def changed_fields(recorded: dict[str, Any], planned: dict[str, Any]) -> list[str]:
    """Dotted names of the config fields whose values differ (``training.learning_rate``)."""
    old, new = _flatten(recorded), _flatten(planned)
    return [name for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]


def check_config_unchanged(run: Run, force: bool) -> None:
    """Refuse to mix results of two configs in one run folder; with ``force``, redo from the first change."""
    first_changed: tuple[int, str, list[str]] | None = None
    for index, stage in enumerate(run.planned_stages()):
        record = run.manifest.stages.get(stage)
        if record is None:
            continue
        changed = changed_fields(record["inputs"]["config"], config_inputs(run, stage))
        if changed:
            first_changed = (index, stage, changed)
            break
    if first_changed is None:
        return
    index, stage, changed = first_changed
    cycle = stage_cycle(stage)
    where = "the base model's evaluation" if cycle is None else f"cycle {cycle}"
    if not force:
        raise UserError(
            f"the config changed since this run was made: {', '.join(repr(f) for f in changed)} "
            f"affects {where} onward (stage {stage}). Use --force to redo from there, or a new --output."
        )
    run.console.print(f"[yellow]--force: {', '.join(changed)} changed; redoing from {stage}[/]")
    superseded = planned_stages(max(run.config.cycles, _recorded_cycles(run.manifest)), list(run.eval_sets))[index:]
    redone = {stage_cycle(s) for s in superseded if stage_kind(s) == "train"} | ({None} if index == 0 else set())
    superseded += [s for s in run.manifest.stages if eval_set_of(s) not in (None, *run.eval_sets)  # traitloop eval's
                   and stage_cycle(s) in redone]  # fmt: skip
    moved = supersede(run.folder, superseded, run.manifest, f"--force: {', '.join(changed)} changed")
    if moved is not None:
        run.console.print(f"[yellow]the superseded outputs are kept in {moved}[/]")
    for later in superseded:
        run.manifest.forget(later)


def _recorded_cycles(manifest: Manifest) -> int:
    return max((c for c in map(stage_cycle, manifest.stages) if c is not None), default=0)


def check_eval_sets_unchanged(run: Run, names: list[str], force: bool) -> None:
    """An eval set evaluated before with other questions, contexts or settings is refused, or redone with ``force``
    (what it held is moved aside, as a forced run moves its stages)."""
    changed = {}
    for stage, record in run.manifest.stages.items():
        if eval_set_of(stage) in names:
            fields = changed_fields(record["inputs"]["config"], config_inputs(run, stage))
            if fields:
                changed[stage] = fields
    if not changed:
        return
    first = next(iter(changed))
    if not force:
        raise UserError(
            f"eval set {eval_set_of(first)!r} was made with other {', '.join(changed[first])} (stage {first}); use "
            "--force to redo it, or another --name"
        )
    moved = supersede(run.folder, list(changed), run.manifest, "--force: the eval set changed")
    run.console.print(f"[yellow]--force: redoing {len(changed)} evaluations; the old ones are kept in {moved}[/]")
    for stage in changed:
        run.manifest.forget(stage)
