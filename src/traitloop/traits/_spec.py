"""Trait specs: YAML files with a schema and a version, like lm-evaluation-harness tasks."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from traitloop.config import read_yaml
from traitloop.errors import UserError
from traitloop.traits._data import encodable, load_conversations

DATA_DIR = Path(__file__).parent / "data"
ANCHOR_SCORES = (0, 25, 50, 75, 100)


def _on_the_scale(score: int) -> int:
    if score not in ANCHOR_SCORES:
        raise ValueError(f"anchor scores must be one of {ANCHOR_SCORES}")
    return score


AnchorScore = Annotated[int, AfterValidator(_on_the_scale)]
"""An anchor's score: one of the five levels every rubric is anchored at."""


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty or only spaces")
    return encodable(text)


NonBlank = Annotated[str, AfterValidator(_not_blank)]
"""Text a judge prompt or an evaluation uses: an empty one would silently weaken it."""


class Anchor(BaseModel):
    """An example answer with the score a judge should give it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    score: AnchorScore
    question: NonBlank
    answer: NonBlank


class TraitSpec(BaseModel):
    """One trait: what it is, how to judge it, how to test for it and how to seed it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    version: int = Field(ge=1, strict=True)  # strict: YAML's `version: yes` is not version 1
    description: NonBlank
    rubric: NonBlank
    anchors: list[Anchor]
    eval_questions: list[NonBlank] = Field(min_length=12)
    path: Path = Field(exclude=True)

    @field_validator("anchors")
    @classmethod
    def _every_level_anchored(cls, anchors: list[Anchor]) -> list[Anchor]:
        missing = sorted(set(ANCHOR_SCORES) - {a.score for a in anchors})
        if missing:
            raise ValueError(f"needs anchored examples at every score {ANCHOR_SCORES}; missing {missing}")
        return anchors

    @field_validator("eval_questions")
    @classmethod
    def _distinct_questions(cls, questions: list[str]) -> list[str]:
        if len({q.strip().lower() for q in questions}) != len(questions):
            raise ValueError("eval questions must be distinct")
        return questions

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def seed_path(self) -> Path:
        """The trait's seed conversations (``seed.jsonl`` beside the spec)."""
        return self.folder / "seed.jsonl"

    def companion(self, name: str) -> Path | None:
        """An optional data file beside the spec (``holdout.jsonl``, ``contrast.jsonl``), if present."""
        path = self.folder / f"{name}.jsonl"
        return path if path.is_file() else None

    def content_hash(self) -> str:
        """Hash of the spec file and its seed set: what a run records to detect a changed trait."""
        digest = hashlib.sha256(self.path.read_bytes())
        if self.seed_path.is_file():
            digest.update(self.seed_path.read_bytes())
        return digest.hexdigest()[:16]


def builtin_traits() -> list[str]:
    """Names of the traits shipped with traitloop."""
    return sorted(p.parent.name for p in DATA_DIR.glob("*/trait.yaml"))


def load_trait(name_or_path: str | Path) -> TraitSpec:
    """Load a built-in trait by name, or a user's trait YAML by path."""
    path = Path(name_or_path)
    if path.suffix not in {".yaml", ".yml"}:
        if str(name_or_path) not in builtin_traits():
            raise UserError(
                f"unknown trait '{name_or_path}': built-in traits are {', '.join(builtin_traits())}, "
                "or pass the path to your own trait YAML"
            )
        path = DATA_DIR / str(name_or_path) / "trait.yaml"
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise UserError(f"invalid trait file {path}: expected a mapping of fields")
    if "path" in data:  # where the spec was read from, never a field of its own
        raise UserError(f"invalid trait file {path}: path: unknown field")
    try:
        spec = TraitSpec.model_validate({**data, "path": path})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in error.errors()
        )
        raise UserError(f"invalid trait file {path}: {problems}") from None
    for name in ("seed", "contrast"):  # read now, so a bad line stops a run before any model work, not mid-way
        companion = spec.companion(name)
        if companion is not None:
            load_conversations(companion)
    return spec
