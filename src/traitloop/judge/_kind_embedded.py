"""The ``embedded`` judge kind: no network and no LLM. Trait: classifiers on sentence embeddings fit on the
trait's own files (chat answers, or SDF documents); coherence: the base model's likelihood of the answer."""

from __future__ import annotations

from traitloop._progress import Progress
from traitloop.config import JudgeSpec
from traitloop.judge._coherence import embedded_coherence_judge, embedded_coherence_judge_id
from traitloop.judge._embedded import embedded_trait_judge, embedded_trait_judge_id
from traitloop.judge._kind import JudgeKind, NllFactory
from traitloop.judge._kind_openai import SERVER_ONLY
from traitloop.judge._sdf import embedded_sdf_judge, embedded_sdf_judge_id
from traitloop.judge._types import Judge
from traitloop.traits import TraitSpec


class EmbeddedKind(JudgeKind):
    name = "embedded"
    option = "embedded"
    learns_from_trait = True

    def check(self, spec: JudgeSpec) -> None:
        server_only = [name for name in SERVER_ONLY if getattr(spec, name) is not None]
        if server_only:
            raise ValueError(f"{', '.join(server_only)} applies only to a judge of kind openai")

    def trait_judge(self, spec: JudgeSpec, trait: TraitSpec, chat: bool, progress: Progress | None = None) -> Judge:
        return embedded_trait_judge(trait, progress) if chat else embedded_sdf_judge(trait, progress)

    def trait_judge_id(self, spec: JudgeSpec, trait: TraitSpec, chat: bool) -> str:
        return embedded_trait_judge_id(trait) if chat else embedded_sdf_judge_id(trait)

    def coherence_judge(self, spec: JudgeSpec, nll: NllFactory, model: str) -> Judge:
        return embedded_coherence_judge(nll(), model)

    def coherence_judge_id(self, spec: JudgeSpec, model: str) -> str:
        return embedded_coherence_judge_id(model)
