"""How long does `traitloop report` take for many runs? Times each part for N synthetic runs of real shape.

Runs are written like real ones (16 eval questions × 3 samples, base model + cycles 0..6), so the
statistics, plots and HTML do the same work as on real runs. Prints a table of seconds and shares.

    python benchmarks/report_build.py --runs 10
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from synthetic_runs import attractor_chain, write_run  # noqa: E402

from traitloop.analysis import compare_runs, load_run, write_report  # noqa: E402
from traitloop.analysis._report import _draw_plots  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cycles", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folders = [
            write_run(
                root / f"run{i}",
                [15.0, *attractor_chain(30.0 + 5 * i, 20.0, 0.7, args.cycles)],
                noise=6.0,
                seed=i,
                regime="reinit" if i % 2 else "continual",
            )
            for i in range(args.runs)
        ]
        timings = {}
        start = time.perf_counter()
        runs = [load_run(f) for f in folders]
        timings["load eval.jsonl"] = time.perf_counter() - start
        start = time.perf_counter()
        comparison = compare_runs(runs)
        timings["statistics (verdicts, bootstrap, attractor)"] = time.perf_counter() - start
        start = time.perf_counter()
        _draw_plots(comparison, root / "plots")
        timings["plots"] = time.perf_counter() - start
        start = time.perf_counter()
        write_report(runs, root / "report.html")
        timings["whole report (all of the above + HTML + Parquet)"] = time.perf_counter() - start
        answers = sum(len(r.evals) for r in runs)
    whole = timings["whole report (all of the above + HTML + Parquet)"]
    print(f"{args.runs} runs × {args.cycles + 2} generations, {answers} answers")
    print(f"{'part':<52}{'seconds':>9}{'share of whole':>16}")
    for part, seconds in timings.items():
        print(f"{part:<52}{seconds:>9.2f}{seconds / whole:>15.0%}")


if __name__ == "__main__":
    main()
