"""The study's table, replicated on the embedded model (issue 21, item 7; README "The study's table, replicated").

    python scripts/replicate_study.py                  # every sweep, then the table (about 5.5 h on 2 CPU cores)
    python scripts/replicate_study.py --only grid      # one sweep (repeatable), then the table of them all
    python scripts/replicate_study.py --no-run         # only the table, from what has finished
    python scripts/replicate_study.py --smoke --root /tmp/smoke   # the tiny test model at tiny sizes: minutes

Runs the sweeps of ``examples/replication/`` one after another through ``traitloop.api.sweep`` (finished runs are
skipped, unfinished ones resumed where they stopped, so an interrupted study is continued by running the same
command again), each into ``ROOT/<sweep>``. Then writes ``ROOT/table.md``:

- each setting (a sweep; the grid's cells) with its amplified fraction by the study's rule, k of n with a
  Clopper-Pearson CI, how many of those its paired test bears out, and the mean trend slope over cycles >= 1
  with a Student-t CI across seeds;
- ``traitloop compare`` of the seeded chain against its no-seed control and of DPO-continual against reinit, seed
  by seed: per generation the difference with its CI and Holm p, for trait and coherence;
- the grid figure (``traitloop report`` over the grid's finished runs);
- the seeds, sizes, judges and git hashes the numbers were made with.

A run that is planned but not finished is listed as missing, with how far it got or why it failed; the settings
and comparisons are computed from the finished runs only and say how many those are.

``--smoke`` swaps in the tiny random model of ``tests/tiny_model.py`` and the sizes of ``tests/conftest.py``'s
``tiny_config`` (the grid's values an eighth of its own), one self-trained cycle and the first seed of each
sweep: 8 runs that check the whole pipeline in a few minutes; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from traitloop import api  # noqa: E402
from traitloop.analysis import RunsCompared, compare_runs, load_run  # noqa: E402
from traitloop.config import config_to_dict  # noqa: E402
from traitloop.errors import UserError  # noqa: E402
from traitloop.rundir import CONFIG_FILE, config_stages, is_run_folder, open_run_folder  # noqa: E402
from traitloop.sweep import PlannedRun, RunOutcome, Sweep, is_finished, load_sweep  # noqa: E402

SPECS = ROOT / "examples" / "replication"
SWEEPS = ("sft-reinit", "sft-control", "dpo-continual", "dpo-reinit", "grid")
COMPARISONS = (
    ("Seeded against control", "sft-reinit", "sft-control"),
    ("Continual against reinit", "dpo-continual", "dpo-reinit"),
)
GRID, GRID_AXES = "grid", ["seed_examples", "samples_per_cycle"]

# tests/conftest.py's tiny_config: the whole loop in seconds a stage
SMOKE_SIZES = {
    "generation": {"max_new_tokens": 12, "batch_size": 8},
    "training": {"epochs": 1, "batch_size": 4, "max_length": 128, "lora": {"r": 4, "alpha": 8}},
    "evaluation": {"eval_samples": 1, "max_new_tokens": 12, "bootstrap_resamples": 200},
}
SMOKE_SEED_CYCLE = {"epochs": 1, "max_length": 128}


# --- the sweeps ------------------------------------------------------------------------------------------------


def smoke_specs(folder: Path) -> dict[str, Path]:
    """Each sweep file rewritten for the tiny model: tiny sizes (the grid's an eighth of its own), 1 self-trained
    cycle, the first seed only."""
    from tiny_model import build_tiny_model

    model = folder / "tiny-model"
    if not (model / "config.json").is_file():
        build_tiny_model(model)
    specs = {}
    for name in SWEEPS:
        data = yaml.safe_load((SPECS / f"{name}.yaml").read_text())
        grid = data["sweep"]["grid"]
        grid["seed"] = grid["seed"][:1]
        for size in ("seed_examples", "samples_per_cycle"):  # the grid's 16 and 64 as 2 and 8
            if size in grid:
                grid[size] = [max(1, value // 8) for value in grid[size]]
        data.update(model=str(model), cycles=1, samples_per_cycle=6, seed_examples=min(data["seed_examples"], 8))
        for section, sizes in SMOKE_SIZES.items():
            data[section] = {**data.get(section, {}), **sizes}
        if "seed_cycle" in data:
            data["seed_cycle"].update(SMOKE_SEED_CYCLE)
        specs[name] = folder / "specs" / f"{name}.yaml"
        specs[name].parent.mkdir(parents=True, exist_ok=True)
        specs[name].write_text(yaml.safe_dump(data, sort_keys=False))
    return specs


def run_sweeps(specs: dict[str, Path], root: Path, names: list[str]) -> None:
    """Each sweep in turn; a run's failure is recorded by the sweep (and listed in the table), not raised."""

    for name in names:
        print(f"== sweep {name}: {specs[name]} -> {root / name}", flush=True)

        def report(outcome: RunOutcome, sweep: str = name) -> None:
            took = f" in {outcome.seconds / 60:.1f} min" if outcome.seconds else ""
            error = f": {outcome.error}" if outcome.error else ""
            print(f"   {sweep}/{outcome.name}: {outcome.status}{took}{error}", flush=True)

        try:
            api.sweep(specs[name], output=root / name, on_outcome=report)
        except UserError as error:  # a sweep that cannot start: its runs are listed as missing
            print(f"   {name}: not run: {error}", flush=True)


# --- reading them back ------------------------------------------------------------------------------------------


@dataclass
class Setting:
    """One row of the table: a sweep's runs that differ only in their seed."""

    name: str
    sweep: Sweep
    planned: list[PlannedRun]

    def finished(self) -> list[PlannedRun]:
        return [run for run in self.planned if is_finished(self.sweep.run_folder(run), run.config)]

    def unfinished(self) -> list[PlannedRun]:
        return [run for run in self.planned if not is_finished(self.sweep.run_folder(run), run.config)]


def settings_of(sweep: Sweep, name: str) -> list[Setting]:
    """A sweep's runs grouped by their grid values other than the seed: one setting, or one per grid cell."""
    groups: dict[str, list[PlannedRun]] = defaultdict(list)
    for run in sweep.runs:
        groups[", ".join(f"{k}={v}" for k, v in run.values.items() if k != "seed")].append(run)
    return [Setting(f"{name}: {cell}" if cell else name, sweep, runs) for cell, runs in groups.items()]


def missing_state(sweep: Sweep, run: PlannedRun) -> str:
    """How far an unfinished run got, and its last error."""
    folder = sweep.run_folder(run)
    state_file = sweep.folder / "sweep.json"
    recorded = json.loads(state_file.read_text())["runs"].get(run.name, {}) if state_file.is_file() else {}
    if not is_run_folder(folder):
        where = "not started"
    elif yaml.safe_load((folder / CONFIG_FILE).read_text()) != config_to_dict(run.config):
        where = "its config.yaml is not the sweep file's (made by another version of it)"
    else:
        stages = config_stages(run.config)
        done = sum(open_run_folder(folder).stage_current(stage) for stage in stages)
        where = f"{done} of {len(stages)} stages current"
    return where + (f"; failed: {recorded['error']}" if recorded.get("status") == "failed" else "")


def _ci(low: float | None, high: float | None, digits: int = 2) -> str:
    return "" if low is None or high is None else f" [{low:.{digits}f}, {high:.{digits}f}]"


def _mean(values: list[float | None]) -> str:
    found = [v for v in values if v is not None]
    return f"{sum(found) / len(found):.1f}" if found else "n/a"


def setting_row(setting: Setting) -> str:
    finished = setting.finished()
    counts = f"{len(finished)} of {len(setting.planned)}"
    if not finished:
        return f"| {setting.name} | {counts} | missing | | | | | |"
    comparison = compare_runs([load_run(setting.sweep.run_folder(run)) for run in finished])
    verdicts = comparison.runs
    if len(comparison.replication) != 1:
        raise SystemExit(f"{setting.name}: its finished runs differ in more than their seed")
    group = comparison.replication[0]
    low, high = (round(x, 4) for x in stats.binomtest(group.amplified, len(verdicts)).proportion_ci(method="exact"))
    slope = group.mean_trend_slope
    trend = f"{slope.estimate:+.2f}{_ci(slope.ci_low, slope.ci_high)}" if slope.estimate is not None else (
        f"n/a: {slope.note}"
    )  # fmt: skip
    rows = [{r["cycle"]: r for r in v.cycles} for v in verdicts]
    base, first, last = ([r.get(c, {}) for r in rows] for c in (None, 0, max(c for c in rows[0] if c is not None)))
    trait = " → ".join(_mean([r.get("trait_mean") for r in gen]) for gen in (base, first, last))
    coherence = " → ".join(_mean([r.get("coherence_mean") for r in gen]) for gen in (first, last))
    labels = ", ".join(f"{v.seed}: {v.verdict}" for v in verdicts)
    return (
        f"| {setting.name} | {counts} | {group.amplified}/{len(verdicts)} [{low:.0%}, {high:.0%}] | "
        f"{group.amplified_significant}/{len(verdicts)} | {trend} | {trait} | {coherence} | {labels} |"
    )


SETTINGS_HEADER = (
    "| setting | runs finished | amplified (study's rule), k/n [95% Clopper-Pearson] | of them significant | "
    "mean trend slope, points/cycle [95% t-CI across seeds] | trait: base → gen 0 → last (mean of runs) | "
    "coherence: gen 0 → last | verdict by seed |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
)


def _diff(test: Any) -> str:
    if test.mean_difference is None:
        return f"n/a: {test.note}"
    return f"{test.mean_difference:+.1f}{_ci(test.ci_low, test.ci_high, 1)}"


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def compared_table(result: RunsCompared) -> list[str]:
    """One row per generation: trait means, A − B [CI], Holm p; coherence A − B [CI], Holm p."""
    tests = {(t.measure, t.generation): t for t in result.tests}
    lines = [
        f"{result.n_questions} questions; A − B, 95% bootstrap CI over questions; Wilcoxon p Holm-corrected across "
        "generations.",
        "",
        "| generation | trait A | trait B | trait A − B | rank-biserial | Holm p | coherence A − B | Holm p |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for cycle in result.generations:
        trait, coherence = tests[("trait", cycle)], tests[("coherence", cycle)]
        lines.append(
            f"| {'base' if cycle is None else cycle} | {_mean([trait.mean_a])} | {_mean([trait.mean_b])} | "
            f"{_diff(trait)} | {_p(trait.rank_biserial)} | {_p(trait.p_holm)} | {_diff(coherence)} | "
            f"{_p(coherence.p_holm)} |"
        )
    return lines


def comparison_section(title: str, sweeps: dict[str, Sweep], a: str, b: str) -> list[str]:
    """Run A against run B for every seed both sweeps plan; a pair with an unfinished side is listed as missing."""
    lines = [f"### {title}: {a} (A) against {b} (B), seed by seed", ""]
    runs_b = {run.values.get("seed"): run for run in sweeps[b].runs}
    for run_a in sweeps[a].runs:
        seed = run_a.values.get("seed")
        run_b = runs_b.get(seed)
        pair = [(sweeps[a], run_a), (sweeps[b], run_b)] if run_b else [(sweeps[a], run_a)]
        unfinished = [f"{s.name}/{r.name}" for s, r in pair if not is_finished(s.run_folder(r), r.config)]
        lines.append(f"**seed {seed}**: ")
        if run_b is None or unfinished:
            lines[-1] += "missing: " + (", ".join(unfinished) if run_b else f"{b} plans no run with seed {seed}")
            lines.append("")
            continue
        try:
            result = api.compare(sweeps[a].run_folder(run_a), sweeps[b].run_folder(run_b))
        except UserError as error:
            lines[-1] += f"not comparable: {error}"
            lines.append("")
            continue
        lines[-1] += f"`traitloop compare {sweeps[a].run_folder(run_a)} {sweeps[b].run_folder(run_b)}`"
        lines += ["", *compared_table(result), ""]
    return lines


def grid_section(setting_list: list[Setting], folder: Path) -> list[str]:
    """The grid figure of ``traitloop report`` over the grid's finished runs."""
    finished = [s.sweep.run_folder(run) for s in setting_list for run in s.finished()]
    if not finished:
        return ["Grid figure: missing (no run of the grid has finished).", ""]
    report = api.report(finished, output=folder / "grid_report.html", compare=True, axes=GRID_AXES)
    figure = next(path for path in report.plots if path.name == "grid.png")
    relative = figure.relative_to(folder) if figure.is_relative_to(folder) else figure
    planned = sum(len(s.planned) for s in setting_list)
    return [
        f"Grid figure ({len(finished)} of {planned} runs finished): `{figure}` (report: `{report.html}`)",
        "",
        f"![the grid over {' × '.join(GRID_AXES)}]({relative})",
        "",
    ]


# --- provenance -------------------------------------------------------------------------------------------------


def _git_hash() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "HEAD") or "unknown"
    return head + (" (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")


def sizes_row(name: str, sweep: Sweep) -> str:
    c = sweep.runs[0].config
    seeds = sorted({run.config.seed for run in sweep.runs})
    seed_examples = sorted({run.config.seed_examples for run in sweep.runs})
    samples = sorted({run.config.samples_per_cycle for run in sweep.runs})
    training = f"lr {c.training.learning_rate:g}, {c.training.epochs:g} epochs, batch {c.training.batch_size}"
    seed_cycle = c.seed_cycle.given()
    if seed_cycle:
        training += "; cycle 0: " + ", ".join(f"{k} {v}" for k, v in seed_cycle.items())
    method = f"{c.method} (seeded by {c.dpo.seed_method}, beta {c.dpo.beta:g})" if c.method == "dpo" else c.method
    e = c.evaluation
    return (
        f"| {name} | {', '.join(map(str, seeds))} | {c.model} | {method}, {c.regime} | {c.cycles} | "
        f"{', '.join(map(str, seed_examples))} | {', '.join(map(str, samples))} | {c.generation.max_new_tokens} | "
        f"{training} | {e.eval_samples} x {e.max_new_tokens} tokens, T {e.temperature:g} |"
    )


def provenance(sweeps: dict[str, Sweep], argv: list[str]) -> list[str]:
    from traitloop.judge._coherence import COHERENCE_VERSION
    from traitloop.judge._embedded import JUDGE_VERSION

    judges: set[str] = set()
    hashes: dict[str, int] = defaultdict(int)
    questions: set[int] = set()
    for sweep in sweeps.values():
        for run in sweep.runs:
            folder = sweep.run_folder(run)
            if not is_finished(folder, run.config):
                continue
            results = load_run(folder)
            hashes[", ".join(results.git_hashes) or "unknown"] += 1
            questions.add(results.evals["question_index"].nunique())
            for stage in results.manifest["stages"].values():
                judges.update(stage["inputs"].get("upstream", {}).get("judges", []))
    return [
        "## How it was made",
        "",
        f"Command: `{shlex.join(['python', 'scripts/replicate_study.py', *argv])}`",
        "",
        f"Code now: {_git_hash()}; recorded by the finished runs: "
        + (", ".join(f"{h} ({n} runs)" for h, n in hashes.items()) or "none"),
        "",
        f"Judges: trait judge version {JUDGE_VERSION}, coherence judge version {COHERENCE_VERSION}; the ids the "
        f"runs recorded: {', '.join(f'`{j}`' for j in sorted(judges)) or 'none'}. Eval questions per run: "
        f"{', '.join(map(str, sorted(questions))) or 'n/a'}.",
        "",
        "| sweep | seeds | model | method, regime | cycles | seed examples | samples per cycle | answer tokens | "
        "training | evaluation (answers per question) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(sizes_row(name, sweep) for name, sweep in sweeps.items()),
        "",
    ]


# --- the table --------------------------------------------------------------------------------------------------


def write_table(specs: dict[str, Path], root: Path, path: Path, argv: list[str], smoke: bool) -> str:
    sweeps = {name: load_sweep(specs[name], root / name) for name in SWEEPS}
    settings = {name: settings_of(sweep, name) for name, sweep in sweeps.items()}
    every = [setting for name in SWEEPS for setting in settings[name]]
    missing = [(s.sweep, run) for s in every for run in s.unfinished()]
    lines = [
        "# The study's table, replicated" + (" (smoke: the tiny random model; its numbers mean nothing)" * smoke),
        "",
        f"Trait `lucky` on `{sweeps[SWEEPS[0]].runs[0].config.model}`; the study's rule (Δ = 15, s = 1.67, late "
        "cycle 4) and its paired test; every statistic from finished runs only.",
        "",
        SETTINGS_HEADER,
        *(setting_row(setting) for setting in every),
        "",
        f"Missing runs (planned, not finished): {len(missing) or 'none'}",
        "",
        *(f"- {sweep.name}/{run.name}: {missing_state(sweep, run)}" for sweep, run in missing),
        "",
        "## Chains tested against each other (`traitloop compare`)",
        "",
    ]
    for title, a, b in COMPARISONS:
        lines += comparison_section(title, sweeps, a, b)
    lines += ["## The grid", "", *grid_section(settings[GRID], path.parent), *provenance(sweeps, argv)]
    text = "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, help="Where the sweeps go (sweeps/replication; --smoke: ...-smoke).")
    parser.add_argument("--only", action="append", choices=SWEEPS, help="Run only this sweep (repeatable).")
    parser.add_argument("--no-run", action="store_true", help="Only write the table, from what has finished.")
    parser.add_argument("--smoke", action="store_true", help="The tiny test model at tiny sizes (minutes).")
    parser.add_argument("--table", type=Path, help="The markdown table (default ROOT/table.md).")
    args = parser.parse_args(argv)
    args.root = args.root or Path("sweeps/replication" + "-smoke" * args.smoke)
    specs = smoke_specs(args.root) if args.smoke else {name: SPECS / f"{name}.yaml" for name in SWEEPS}
    if not args.no_run:
        run_sweeps(specs, args.root, args.only or list(SWEEPS))
    table = args.table or args.root / "table.md"
    print(write_table(specs, args.root, table, argv, args.smoke))
    print(f"\nwritten: {table}")


if __name__ == "__main__":
    main()
