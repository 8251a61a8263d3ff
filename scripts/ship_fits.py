"""Make the fits that ship with traitloop, so a new user does not pay them on a cold cache: for each built-in
trait, the embedded trait judge's two classifiers (and the SDF judge's, for a trait with SDF data) and the
persona direction in the embedded model (SmolLM2-135M-Instruct, float32 on the CPU, as a CPU run loads it).

    python scripts/ship_fits.py [--trait lucky ...] [--no-classifiers] [--no-directions]

Every fit is made afresh (never read from a cache or from what ships) and written under the name a run looks
for: a classifier under its judge id (which hashes the judge version and its training data) into
``src/traitloop/judge/data/fits/``, with the versions of scikit-learn, the embedder and sentence-transformers
it was made with; a direction under the hash of the model's config and weights, the recipe and every trait file
it reads into ``src/traitloop/measure/data/persona/``, keeping only the chosen layer. A trait's older shipped
files go. The classifiers take about a minute each on 2 CPU cores (the negatives' embeddings are shared, so
the later ones are quicker); a direction takes 1-5 minutes (forward passes over about 300 answers).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from rich.console import Console

from traitloop._progress import Progress
from traitloop.judge._embedded import _fit_both, embedded_trait_judge_id
from traitloop.judge._embedded import _training_set as trait_training_set
from traitloop.judge._fits import SHIPPED as SHIPPED_FITS
from traitloop.judge._fits import fit_name, write_fit
from traitloop.judge._sdf import _training_set as sdf_training_set
from traitloop.judge._sdf import embedded_sdf_judge_id
from traitloop.loop import quiet_libraries
from traitloop.measure import persona_direction
from traitloop.measure._persona import SHIPPED as SHIPPED_DIRECTIONS
from traitloop.measure._persona import direction_file, write_direction
from traitloop.models import CPU_FLOAT32, load_model, load_tokenizer, resolve_model
from traitloop.traits import builtin_traits, load_trait

MODEL = "smollm2-135m-instruct"


def replace_files(folder: Path, pattern: str, keep: Path) -> None:
    """Remove a trait's older shipped files (``keep`` is the one just written)."""
    for old in folder.glob(pattern):
        if old != keep:
            old.unlink()


def ship_classifiers(trait_name: str, progress: Progress) -> list[Path]:
    trait = load_trait(trait_name)
    judges = [("embedded-trait", embedded_trait_judge_id(trait), trait_training_set(trait))]
    if (trait.folder / "sdf.yaml").is_file() and (trait.folder / "sdf_seed.jsonl").is_file():
        judges.append(("embedded-sdf", embedded_sdf_judge_id(trait), sdf_training_set(trait)))
    written = []
    for kind, judge_id, (texts, targets) in judges:
        whole, sentence = _fit_both(texts, targets, progress)
        path = SHIPPED_FITS / fit_name(judge_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_fit(path, judge_id, whole, sentence)
        replace_files(SHIPPED_FITS, f"{kind}_{trait_name}_*.safetensors", path)
        written.append(path)
    return written


def ship_direction(model, tokenizer, trait_name: str, progress: Progress) -> Path:
    direction = persona_direction(model, tokenizer, trait_name, use_cache=False, progress=progress)
    path = SHIPPED_DIRECTIONS / direction_file(trait_name, direction.key)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_direction(path, dataclasses.replace(direction, model=MODEL))  # its name, not this machine's folder
    replace_files(SHIPPED_DIRECTIONS, f"{trait_name}-*.safetensors", path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trait", action="append", choices=builtin_traits(), help="only these (default: all)")
    parser.add_argument("--no-classifiers", action="store_true", help="leave the judges' fits as they are")
    parser.add_argument("--no-directions", action="store_true", help="leave the persona directions as they are")
    args = parser.parse_args()
    quiet_libraries()
    console = Console()
    progress = Progress(console)
    traits = args.trait or builtin_traits()
    model = tokenizer = None
    if not args.no_directions:
        path = resolve_model(MODEL)
        model, tokenizer = load_model(path, precision=CPU_FLOAT32), load_tokenizer(path)
    for trait in traits:
        written: list[Path] = []
        started = time.perf_counter()
        if not args.no_classifiers:
            written += ship_classifiers(trait, progress)
        if model is not None:
            written.append(ship_direction(model, tokenizer, trait, progress))
        console.print(f"{trait}: {time.perf_counter() - started:.0f} s", highlight=False)
        for path in written:
            console.print(f"  {path.name}: {path.stat().st_size:,} bytes", highlight=False, soft_wrap=True)


if __name__ == "__main__":
    main()
