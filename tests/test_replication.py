"""scripts/replicate_study.py end to end on the tiny model: every setting a row, a removed run named as missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from traitloop.sweep import load_sweep

ROOT = Path(__file__).parents[1]
SETTINGS = [
    "sft-reinit",
    "sft-control",
    "dpo-continual",
    "dpo-reinit",
    *(f"grid: seed_examples={e}, samples_per_cycle={s}" for e in (2, 8) for s in (2, 8)),
]


def replicate(root: Path, *options: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, str(ROOT / "scripts" / "replicate_study.py"), "--smoke", "--root", str(root), *options]
    subprocess.run(command, check=True, env=env, cwd=ROOT, capture_output=True, text=True)
    return (root / "table.md").read_text()


def test_every_replication_sweep_is_valid():
    for name in ("sft-reinit", "sft-control", "dpo-continual", "dpo-reinit", "grid"):
        runs = load_sweep(ROOT / "examples" / "replication" / f"{name}.yaml", Path("unused")).runs
        assert len(runs) == (8 if name == "grid" else 3) and {r.config.cycles for r in runs} == {4}


@pytest.mark.slow  # 8 tiny runs: 5 to 8 minutes measured on 2 busy shared cores
def test_smoke_table_has_every_setting_and_names_missing_runs(tmp_path):
    table = replicate(tmp_path)
    rows: dict[str, str] = {}  # the settings table comes first; later tables reuse some names
    for line in table.splitlines():
        if line.startswith("| "):
            rows.setdefault(line.split(" | ")[0].removeprefix("| "), line)
    for setting in SETTINGS:
        assert rows[setting].split(" | ")[1] == "1 of 1", setting
    assert "Missing runs (planned, not finished): none" in table
    assert table.count("`traitloop compare ") == 2 and "| 1 |" in table  # generation 1 of both comparisons
    assert (tmp_path / "grid_report_plots" / "grid.png").is_file() and "](grid_report_plots/grid.png)" in table
    assert "trait judge version" in table and "| sft-control | 0 |" in table  # provenance: seeds and sizes

    shutil.rmtree(tmp_path / "sft-control" / "runs" / "seed=0")
    table = replicate(tmp_path, "--no-run")
    assert "| sft-control | 0 of 1 | missing |" in table
    assert "Missing runs (planned, not finished): 1" in table and "- sft-control/seed=0: not started" in table
    assert "**seed 0**: missing: sft-control/seed=0" in table  # the seeded-against-control comparison
    assert rows["sft-reinit"] in table  # the other settings unchanged
