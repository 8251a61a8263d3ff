"""The dependency floors in pyproject.toml are versions the code works with: what it needs is at or above each
floor (an older version lacks an API the code calls), and what the tests run on satisfies every requirement."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).parent.parent / "pyproject.toml"
REQUIREMENTS = [Requirement(r) for r in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]]

# The oldest version of each that has what the code uses (pyproject.toml says why, next to each floor).
NEEDED = {"scipy": "1.15", "peft": "0.18", "trl": "1.15", "transformers": "5.0"}


@pytest.mark.parametrize(("name", "needed"), NEEDED.items())
def test_no_floor_is_below_what_the_code_needs(name: str, needed: str) -> None:
    requirement = next(r for r in REQUIREMENTS if r.name == name)
    floors = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==")]
    assert floors and min(floors) >= Version(needed), f"{requirement} allows versions the code cannot run on"


@pytest.mark.parametrize("requirement", REQUIREMENTS, ids=str)
def test_the_tested_environment_meets_every_requirement(requirement: Requirement) -> None:
    try:
        installed = version(requirement.name)
    except PackageNotFoundError:
        pytest.fail(f"{requirement.name} is a dependency but is not installed")
    assert requirement.specifier.contains(Version(installed).base_version, prereleases=True), (
        f"{requirement.name} {installed} is installed, but pyproject.toml asks for {requirement}"
    )
