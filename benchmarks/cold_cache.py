"""A first-time user's waits from a cold cache (the README demo, stage by stage; ``traitloop judge`` on 600
answers), against the same commands run from an earlier commit.

    python benchmarks/cold_cache.py                      # both, this checkout against ef31f4c (no shipped fits)
    python benchmarks/cold_cache.py --what judge         # one of them
    python benchmarks/cold_cache.py --baseline-ref REF   # against another commit
    python benchmarks/cold_cache.py --no-baseline        # this checkout alone

Each command runs in a subprocess with a fresh, empty ``TRAITLOOP_CACHE``, so it includes what a first-time user
waits for: converting the embedded model's GGUF to safetensors, fitting the judges and the persona direction
(unless they ship), and every stage. The demo is ``traitloop run examples/lucky-sft.yaml``; the judge run scores
600 answers (the embedded model's 240 ordinary ones, then the built-in traits' seed answers) for ``lucky``. The
baseline is the same command run from a ``git worktree`` of the baseline commit (its ``src`` first on
``PYTHONPATH``), one after the other in this process on the same machine. Prints each demo stage's time (from the
manifest's finish times; the first stage's includes start-up and the model conversion), the totals with their
ratio, and whether both printed the same numbers. Run it alone: another torch job on 2 cores distorts every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from traitloop.rundir import MANIFEST_FILE
from traitloop.traits import BASE_ANSWERS_PATH, builtin_traits, load_conversations, load_trait

ROOT = Path(__file__).resolve().parents[1]
DEMO = "examples/lucky-sft.yaml"
JUDGED = 600
# the generation lines' numbers without their times, which differ between the two
NUMBERS = re.compile(r"^(base model|generation \d+): .*?(?=\s+\(\d)", re.M)


def answers_file(path: Path) -> Path:
    """600 question/answer rows: the embedded model's ordinary answers, then each built-in trait's seed answers."""
    rows = [json.loads(line) for line in BASE_ANSWERS_PATH.read_text().splitlines()]
    rows = [{"question": r["question"], "answer": r["answer"]} for r in rows]
    for name in sorted(builtin_traits()):
        rows += [{"question": c.question, "answer": c.answer} for c in load_conversations(load_trait(name).seed_path)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:JUDGED]))
    return path


def timed(what: str, source: Path, folder: Path) -> dict:
    """One cold-cache run of ``what`` from ``source`` (a checkout): wall time, stage times, printed numbers."""
    folder.mkdir(parents=True)
    output = folder / "out"
    if what == "demo":
        arguments = ["run", str(source / DEMO), "--output", str(output)]
    else:
        arguments = ["judge", "--trait", "lucky", "--input", str(answers_file(folder / "answers.jsonl")),
                     "--output", str(output)]  # fmt: skip
    env = {**os.environ, "TRAITLOOP_CACHE": str(folder / "cache"), "PYTHONPATH": str(source / "src")}
    started, wall_start = datetime.now().astimezone(), time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "traitloop", *arguments], env=env, cwd=source,
                            capture_output=True, text=True, check=False)  # fmt: skip
    wall = time.perf_counter() - wall_start
    if result.returncode != 0:
        raise SystemExit(f"{what} from {source} failed:\n{result.stdout}\n{result.stderr}")
    if what == "demo":
        numbers = [match.group(0) for match in NUMBERS.finditer(result.stdout)]
        return {"wall": wall, "stages": stage_times(output, started), "numbers": numbers}
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    scores = [numbers_in(row) for row in rows]
    return {"wall": wall, "stages": {}, "numbers": [f"{len(rows)} rows scored"], "scores": scores}


def numbers_in(value: object, path: str = "") -> dict[str, float]:
    """Every number in a scored row (its judgements' scores), by where it sits."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in numbers_in(item, f"{path}/{key}").items()}
    return {path: value} if isinstance(value, (int, float)) and not isinstance(value, bool) else {}


def stage_times(run: Path, started: datetime) -> dict[str, float]:
    """Seconds each stage took: the gap between its finish time and the one before (the first from the start)."""
    stages = json.loads((run / MANIFEST_FILE).read_text())["stages"]
    finished = sorted((datetime.fromisoformat(s["finished"]), name) for name, s in stages.items())
    times, previous = {}, started.replace(microsecond=0)
    for when, name in finished:
        times[name], previous = (when - previous).total_seconds(), when
    return times


def print_table(what: str, results: dict[str, dict]) -> None:
    names = list(results)
    print(f"\n{what}: " + ("traitloop run " + DEMO if what == "demo" else f"traitloop judge on {JUDGED} answers"))
    print(f"{'stage':<34}" + "".join(f"{n:>22}" for n in names))
    for stage in dict.fromkeys(s for r in results.values() for s in r["stages"]):
        print(f"{stage:<34}" + "".join(f"{results[n]['stages'].get(stage, float('nan')):>20.0f} s" for n in names))
    print(f"{'total (wall, cold cache)':<34}" + "".join(f"{results[n]['wall'] / 60:>18.2f} min" for n in names))
    if len(names) == 2:
        a, b = (results[n]["wall"] for n in names)
        print(f"{names[1]}: {a / b:.2f}x faster than {names[0]}")
        key = "numbers" if what == "demo" else "scores"
        print("results: " + ("the same" if results[names[0]][key] == results[names[1]][key] else "DIFFERENT"))
    for name in names:
        print(f"{name}: " + "; ".join(results[name]["numbers"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--what", choices=["demo", "judge"], action="append", help="default: both")
    parser.add_argument("--baseline-ref", default="ef31f4c", help="the commit to compare against")
    parser.add_argument("--no-baseline", action="store_true", help="time this checkout only")
    args = parser.parse_args()
    print(f"python {' '.join(sys.argv)}: {os.cpu_count()} CPUs, one command at a time")
    with tempfile.TemporaryDirectory(prefix="cold-cache-") as tmp:
        folder = Path(tmp)
        baseline = folder / f"traitloop-{args.baseline_ref}"
        if not args.no_baseline:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(baseline), args.baseline_ref],
                           check=True, capture_output=True)  # fmt: skip
        try:
            for what in args.what or ["demo", "judge"]:
                results = {}
                if not args.no_baseline:
                    results[args.baseline_ref] = timed(what, baseline, folder / what / "baseline")
                    print(f"{what}, {args.baseline_ref}: {results[args.baseline_ref]['wall']:.0f} s", flush=True)
                results["this checkout"] = timed(what, ROOT, folder / what / "this")
                print_table(what, results)
        finally:
            if not args.no_baseline:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline)], check=False)


if __name__ == "__main__":
    main()
