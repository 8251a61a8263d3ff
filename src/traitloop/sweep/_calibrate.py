"""Seed calibration: how many seed conversations put generation 0's trait mean inside a target band.

Amplification is easiest to see from a middling start: a trait already near 100 has nowhere to go and one near
0 may never take hold. So before a sweep, ``calibrate`` binary-searches ``seed_examples`` with probe runs that
stop after cycle 0, assuming the trait mean rises with the number of seed conversations (true on average;
individual probes are noisy, which is why every probe's CI is kept). Each probe is an ordinary run folder
named by its ``seed_examples``, so a re-run reuses finished probes instead of training them again, and the probes
evaluate the base model once between them (in the output folder's ``shared/``, as a sweep's runs do, so a sweep
written there after the calibration takes it too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console

from traitloop._atomic import atomic_write_json
from traitloop._progress import Progress
from traitloop.config import ExperimentConfig, config_to_dict, parse_config
from traitloop.errors import UserError
from traitloop.rundir import SHARED, open_run_folder
from traitloop.sweep._executors import RunJob, execute_run
from traitloop.sweep._run import is_finished

RESULT_FILE = "calibration.json"


@dataclass(frozen=True)
class Probe:
    """One probed seed size and generation 0's trait mean with its 95% CI."""

    seed_examples: int
    trait_mean: float
    ci_low: float
    ci_high: float
    run: str
    reused: bool = False


@dataclass(frozen=True)
class Calibration:
    target: tuple[float, float]
    seed_examples: int
    in_band: bool
    probes: list[Probe]
    file: Path


def _distance(mean: float, band: tuple[float, float]) -> float:
    return max(band[0] - mean, mean - band[1], 0.0)


def search_seed_examples(
    measure: Callable[[int], float], low: int, high: int, band: tuple[float, float], max_probes: int
) -> tuple[int, bool]:
    """Binary search over ``low..high`` for a size whose measured trait mean falls inside ``band``.

    Returns the size found and True, or, when the interval or the probe budget runs out, the probed size
    closest to the band and False.
    """
    if not 1 <= low <= high:
        raise UserError(f"calibration needs 1 <= low <= high (got low={low}, high={high})")
    measured: dict[int, float] = {}
    while low <= high and len(measured) < max_probes:
        middle = (low + high) // 2
        mean = measured[middle] = measure(middle)
        if mean < band[0]:
            low = middle + 1
        elif mean > band[1]:
            high = middle - 1
        else:
            return middle, True
    closest = min(measured, key=lambda size: (_distance(measured[size], band), size))
    return closest, False


def _probe_config(config: ExperimentConfig, seed_examples: int) -> ExperimentConfig:
    name = f"seed_examples={seed_examples}"
    return parse_config({**config_to_dict(config), "cycles": 0, "seed_examples": seed_examples, "name": name}, name)


def _read_probe(folder: Path, seed_examples: int, reused: bool) -> Probe:
    metrics = open_run_folder(folder).metrics(0)
    trait = metrics["trait"] if metrics else {"mean": None}
    if trait["mean"] is None:
        raise UserError(f"probe {folder} has no scored answer at cycle 0; check the trait judge")
    return Probe(seed_examples, trait["mean"], trait["ci_low"], trait["ci_high"], folder.name, reused)


def _run_probe(config: ExperimentConfig, probes: Path, seed_examples: int, console: Console) -> Probe:
    probe = _probe_config(config, seed_examples)
    folder = probes / probe.name
    if is_finished(folder, probe):
        found = _read_probe(folder, seed_examples, reused=True)
    else:
        log = probes.parent / "logs" / f"calibration-{probe.name}.log"
        outcome = execute_run(RunJob(probe.name, config_to_dict(probe), folder, log, shared=probes.parent / SHARED))
        if outcome.status == "failed":
            raise UserError(f"calibration probe {probe.name} failed: {outcome.error} (log: {log})")
        found = _read_probe(folder, seed_examples, reused=False)
    console.print(
        f"seed_examples={seed_examples}: trait {found.trait_mean:.1f} [{found.ci_low:.1f}, {found.ci_high:.1f}]"
        + (" (reused)" if found.reused else ""),
        highlight=False,
    )
    return found


def calibrate(
    config: ExperimentConfig,
    band: tuple[float, float],
    output: Path,
    low: int,
    high: int,
    max_probes: int = 8,
    console: Console | None = None,
) -> Calibration:
    """Find ``seed_examples`` for which generation 0's trait mean lies in ``band``; write ``calibration.json``."""
    if band[0] > band[1]:
        raise UserError(f"target band {band[0]}-{band[1]} is empty: give it as LOW-HIGH")
    console = console or Console()
    probes: dict[int, Probe] = {}
    most = min(max_probes, max(high - low + 1, 1).bit_length())  # a binary search over n sizes: log2(n) + 1 probes

    with Progress(console).task(f"calibrating: probe runs of seed_examples in {low}-{high}", most) as step:

        def measure(seed_examples: int) -> float:
            probes[seed_examples] = _run_probe(config, output / "calibration", seed_examples, console)
            step(1)
            return probes[seed_examples].trait_mean

        chosen, in_band = search_seed_examples(measure, low, high, band, max_probes)
    result = Calibration(band, chosen, in_band, list(probes.values()), output / RESULT_FILE)
    atomic_write_json(
        result.file,
        {
            "target": list(band),
            "seed_examples": chosen,
            "in_band": in_band,
            "search": {"low": low, "high": high, "max_probes": max_probes},
            "probes": [asdict(probe) for probe in result.probes],
            "config": config_to_dict(config),
        },
    )
    return result
