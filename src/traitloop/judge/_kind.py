"""What a judge kind is to the rest of traitloop: a name, the settings of a ``JudgeSpec`` it accepts, and small
factories for the trait and coherence judges it makes (inspect_ai's scorers are built the same way).

Each kind is one module of this package with one line in the registry (``traitloop.judge.JUDGE_KINDS``);
nothing outside the registry branches on a judge's kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from traitloop._progress import Progress
from traitloop.config import JudgeSpec
from traitloop.judge._types import Judge
from traitloop.traits import TraitSpec

NllFactory = Callable[[], Any]
"""Gives the base model's likelihood scorer (an ``NllScorer``) when a judge needs one; only then is it built."""


class JudgeKind:
    """A kind of judge. Subclasses set ``name`` and ``option`` and implement the factories."""

    name: ClassVar[str]
    option: ClassVar[str]  # how ``--judge`` names it: ``embedded``, ``openai:MODEL@URL``
    learns_from_trait: ClassVar[bool] = False  # fit on the trait's own files (authoring must cross-fit it)

    def check(self, spec: JudgeSpec) -> None:
        """Raise ``ValueError`` for settings of ``spec`` this kind cannot use or still needs."""

    def from_option(self, rest: str, api_key_env: str | None) -> JudgeSpec | None:
        """The spec a ``--judge`` option names (``rest``: what follows ``name:``), or None if it is malformed."""
        return JudgeSpec(kind=self.name) if not rest else None

    def label(self, spec: JudgeSpec) -> str:
        """How a judge is named in tables (its ``--judge`` option)."""
        return self.name

    def trait_judge(self, spec: JudgeSpec, trait: TraitSpec, chat: bool, progress: Progress | None = None) -> Judge:
        """The trait judge: of chat answers (``chat``), or of documents for the belief of the trait's SDF recipe;
        a judge that is fit first shows the fit's progress in ``progress``."""
        raise NotImplementedError

    def trait_judge_id(self, spec: JudgeSpec, trait: TraitSpec, chat: bool) -> str:
        """The trait judge's id, cheaply (without fitting or asking anything)."""
        raise NotImplementedError

    def coherence_judge(self, spec: JudgeSpec, nll: NllFactory, model: str) -> Judge:
        """The coherence judge; ``model`` is the run's base model, ``nll`` its likelihood scorer."""
        raise NotImplementedError

    def coherence_judge_id(self, spec: JudgeSpec, model: str) -> str:
        raise NotImplementedError
