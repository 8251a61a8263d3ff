"""A finished generation taken elsewhere (``traitloop export``): its weights as a standalone Hugging Face folder.

Only a generation whose training stage is current for the run's config is exported, so what leaves the run is
what its results were measured on; a control chain's generation 0 trained nothing (it is the base model) and is
refused, as is an output folder that holds anything, unless ``force``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from traitloop.errors import UserError
from traitloop.models import export_weights, resolve_model
from traitloop.rundir import BASE, TRAIN, WEIGHTS, cycle_dir_name, open_run_folder, weights_id


def export_generation(run_dir: Path, generation: int, output: Path, merge: bool = False, force: bool = False) -> Path:
    """Write generation ``generation`` of the run in ``run_dir`` to ``output``: its LoRA adapter (pointing at the
    resolved base model) and the tokenizer, or with ``merge`` the merged full weights, config and tokenizer."""
    run = open_run_folder(run_dir)
    cycles = run.config.cycles
    if not 0 <= generation <= cycles:
        raise UserError(f"{run_dir} has generations 0 to {cycles} (its config's cycles), no generation {generation}")
    stage = f"{cycle_dir_name(generation)}/{TRAIN}"
    if not run.stage_current(stage):
        state = "is stale (what it was trained from has changed)" if stage in run.manifest.stages else "is not finished"
        raise UserError(
            f"generation {generation} of {run_dir} {state}: only a current generation is exported; finish the run "
            "first (traitloop run)"
        )
    record = run.manifest.stages[stage]
    if weights_id(record) == BASE:
        raise UserError(
            f"generation {generation} of {run_dir} is the base model itself ({run.config.model}): a control chain "
            "(seed_examples: 0) trains nothing in cycle 0, so there are no weights to export; use the base model"
        )
    output = Path(output)
    if output.exists() and not force and (not output.is_dir() or any(output.iterdir())):
        raise UserError(f"{output} exists and is not empty: choose another --output, or --force to replace it")
    provenance = {
        "run": str(run.folder.resolve()),
        "generation": generation,
        "weights": weights_id(record),
        "model": run.config.model,
        "method": run.config.method,
        "traitloop": _version(),
    }
    weights = run.folder / cycle_dir_name(generation) / WEIGHTS
    base = resolve_model(run.config.model)
    return export_weights(base, weights, output, merge, run.config.trust_remote_code, provenance)


def _version() -> str:
    try:
        return version("traitloop")
    except PackageNotFoundError:
        return "unknown"
