"""Importing traitloop leaves matplotlib alone: the caller's backend (a notebook's inline, a GUI's Qt, a
script's choice in MPLBACKEND) and rcParams stay as they were, even after the report has drawn its plots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent

PROBE = """
import json, sys
from pathlib import Path
import matplotlib
font = matplotlib.rcParams["font.size"]
import traitloop, traitloop.analysis, traitloop.cli
after_import = matplotlib.get_backend()
from synthetic_runs import write_run
from traitloop.analysis import load_run, write_report
folder = write_run(Path(sys.argv[1]), [10.0, 20.0, 25.0, 30.0])
report = write_report([load_run(folder)], folder / "report.html")
print(json.dumps({
    "after_import": after_import,
    "after_report": matplotlib.get_backend(),
    "font_size": [font, matplotlib.rcParams["font.size"]],
    "pngs": [p.read_bytes().startswith(b"\\x89PNG") for p in report.plots],
}))
"""


def test_import_and_report_leave_the_callers_backend_and_style(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MPLBACKEND": "svg",
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["after_import"] == "svg"
    assert seen["after_report"] == "svg"
    assert seen["font_size"][0] == seen["font_size"][1]
    assert len(seen["pngs"]) == 3 and all(seen["pngs"])
