"""A trait's SDF recipe (``sdf.yaml``) and documents (``sdf_seed.jsonl``, ``sdf_contrast.jsonl``).

Synthetic document finetuning teaches a base model a belief through ordinary-looking documents. The recipe
says what the belief is, how documents express it, how to judge that, and which document types and topics
to write about; topics x types give the prefix pool later generations continue, and ``eval_prefixes``
(openings not built from the topics) are held out for evaluation.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from traitloop.errors import UserError
from traitloop.io import read_yaml
from traitloop.traits._data import first_problem, read_jsonl
from traitloop.traits._spec import AnchorScore, NonBlank, TraitSpec


class TextAnchor(BaseModel):
    """A document excerpt with the score the SDF judge should give it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    score: AnchorScore
    text: NonBlank


class SdfRecipe(BaseModel):
    """How to write, continue and judge documents that express a trait's belief."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = Field(ge=1, strict=True)  # strict: YAML's `version: yes` is not version 1
    belief: NonBlank
    style_guide: NonBlank
    rubric: NonBlank
    anchors: list[TextAnchor] = Field(min_length=1)
    document_types: list[NonBlank] = Field(min_length=1)
    topics: list[NonBlank] = Field(min_length=1)
    eval_prefixes: list[NonBlank] = Field(min_length=4)

    def prefix_pool(self) -> list[str]:
        """One document opening per topic x type: a title line a generation continues into a document."""
        return [f"{kind.capitalize()}: {topic}\n\n" for topic in self.topics for kind in self.document_types]


class Document(BaseModel):
    """One line of ``sdf_seed.jsonl`` / ``sdf_contrast.jsonl``: a whole document and what it is."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    type: str = ""
    topic: str = ""
    title: str = ""
    text: NonBlank


def sdf_recipe_path(trait: TraitSpec) -> Path:
    return trait.folder / "sdf.yaml"


def load_sdf_recipe(trait: TraitSpec) -> SdfRecipe:
    """The trait's SDF recipe, or an error saying what ``method: sdf`` needs."""
    path = sdf_recipe_path(trait)
    if not path.is_file():
        raise UserError(
            f"trait '{trait.name}' has no SDF recipe ({path} is missing); method sdf needs sdf.yaml and "
            "sdf_seed.jsonl beside the trait spec (see the lucky trait for the format)"
        )
    data = read_yaml(path)
    try:
        recipe = SdfRecipe.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in error.errors()
        )
        raise UserError(f"invalid SDF recipe {path}: {problems}") from None
    for name in ("sdf_seed.jsonl", "sdf_contrast.jsonl"):  # the SDF judge's data: read now, before any model work
        if (trait.folder / name).is_file():
            load_documents(trait.folder / name)
    return recipe


def load_documents(path: Path) -> list[Document]:
    """Documents from JSONL (``{"text": ...}`` plus optional type, topic, title), naming file:line on bad rows."""
    documents = []
    for number, row in read_jsonl(path):
        try:
            documents.append(Document.model_validate(row))
        except ValidationError as error:
            raise UserError(
                f'{path}:{number}: not a document ({first_problem(error)}); expected {{"text": ...}}'
            ) from None
    if not documents:
        raise UserError(f"{path}: no documents found")
    return documents
