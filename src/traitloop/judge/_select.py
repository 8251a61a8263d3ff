"""Which trait judge a run uses: the one place that choice is made, so new judges plug in here."""

from __future__ import annotations

from traitloop.judge._embedded import embedded_trait_judge, embedded_trait_judge_id
from traitloop.judge._sdf import embedded_sdf_judge, embedded_sdf_judge_id
from traitloop.judge._types import Judge
from traitloop.traits import TraitSpec


def trait_judge_for(trait: TraitSpec, method: str, fit: bool = True) -> tuple[Judge | None, str]:
    """The trait judge for a method's evaluations and its id: documents for sdf, chat answers otherwise.

    With ``fit=False`` only the id is computed (cheap), for recording what a stage depends on.
    """
    if method == "sdf":
        return (embedded_sdf_judge(trait) if fit else None), embedded_sdf_judge_id(trait)
    return (embedded_trait_judge(trait) if fit else None), embedded_trait_judge_id(trait)
