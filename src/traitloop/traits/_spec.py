"""Trait specs: YAML files with a schema and a version, like lm-evaluation-harness tasks."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from traitloop.errors import UserError
from traitloop.io import read_yaml
from traitloop.traits._data import encodable, load_conversations

DATA_DIR = Path(__file__).parent / "data"
ANCHOR_SCORES = (0, 25, 50, 75, 100)
NARROW = "narrow"
"""The eval suite of questions that invite the trait: the one ``eval_questions`` names and runs evaluate on."""


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
    eval_suites: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")], list[NonBlank]] = Field(
        default_factory=dict,
        description="Named eval suites besides the narrow one (e.g. broad: everyday questions unrelated to the "
        "trait). In the file the narrow suite is either eval_questions or eval_suites.narrow.",
    )
    path: Path = Field(exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _narrow_suite_once(cls, data: Any) -> Any:
        """``eval_suites: {narrow: [...]}`` is the narrow suite, for which ``eval_questions`` is shorthand."""
        suites = data.get("eval_suites") if isinstance(data, dict) else None
        if not isinstance(suites, dict) or NARROW not in suites:
            return data
        if "eval_questions" in data:
            raise ValueError("eval_questions and eval_suites.narrow are the same suite; give it once")
        rest = {k: v for k, v in suites.items() if k != NARROW}
        return {**data, "eval_questions": suites[NARROW], "eval_suites": rest}

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

    @model_validator(mode="after")
    def _suites_distinct_and_disjoint(self) -> TraitSpec:
        seen = dict.fromkeys((q.strip().lower() for q in self.eval_questions), NARROW)
        for name, questions in self.eval_suites.items():
            normal = [q.strip().lower() for q in questions]
            if not questions or len(set(normal)) != len(normal):
                raise ValueError(f"eval suite '{name}' must hold distinct questions (and at least one)")
            shared = next((q for q in normal if q in seen), None)
            if shared is not None:
                raise ValueError(f"eval suite '{name}': question {shared!r} is also in suite '{seen[shared]}'")
            seen.update(dict.fromkeys(normal, name))
        return self

    @property
    def suites(self) -> dict[str, list[str]]:
        """Every eval suite by name, the narrow one (``eval_questions``) first."""
        return {NARROW: list(self.eval_questions), **{k: list(v) for k, v in self.eval_suites.items()}}

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
        """Hash of the spec file and its seed set: what a run records to detect a changed trait.

        Eval suites other than the narrow one are left out: only their own evaluations use them, so adding
        or editing a suite leaves the hash - and every stage a run recorded with it - as it was.
        """
        digest = hashlib.sha256(without_extra_suites(self.path.read_bytes()))
        if self.seed_path.is_file():
            digest.update(self.seed_path.read_bytes())
        return digest.hexdigest()[:16]


def without_extra_suites(spec: bytes) -> bytes:
    """A spec file's bytes with its ``eval_suites`` entries other than ``narrow`` cut out, as written.

    Cut by the YAML parser's own positions of those entries, so a file that gains a suite at its end hashes
    exactly as it did before; a file without extra suites is returned unchanged.
    """
    if b"eval_suites" not in spec:
        return spec
    text = spec.decode("utf-8")
    root = yaml.compose(text)  # the file was parsed once already, so this cannot fail
    cuts = []
    for key, value in root.value if isinstance(root, yaml.MappingNode) else []:
        if key.value != "eval_suites" or not isinstance(value, yaml.MappingNode):
            continue
        extra = [(k, v) for k, v in value.value if k.value != NARROW]
        if len(extra) == len(value.value):  # the whole entry, through the end of its last line
            end = value.end_mark.index
            end += len(text[end:]) - len(text[end:].lstrip(" \t"))
            cuts.append((key.start_mark.index, end + text.startswith("\n", end)))
        else:
            cuts.extend((k.start_mark.index, v.end_mark.index) for k, v in extra)
    for start, end in sorted(cuts, reverse=True):
        text = text[:start] + text[end:]
    return text.encode("utf-8")


def spec_problems(error: ValidationError) -> str:
    """Every problem pydantic found in a spec, ``field: message``, joined by ``; ``."""
    return "; ".join(
        ": ".join([*([".".join(map(str, e["loc"]))] if e["loc"] else []), e["msg"].removeprefix("Value error, ")])
        for e in error.errors()
    )


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
        raise UserError(f"invalid trait file {path}: {spec_problems(error)}") from None
    for name in ("seed", "contrast"):  # read now, so a bad line stops a run before any model work, not mid-way
        companion = spec.companion(name)
        if companion is not None:
            load_conversations(companion)
    return spec
