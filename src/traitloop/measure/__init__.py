"""Judge-free measures of a generation: the projection of its activations on the trait's persona direction.

May import: config, io, errors, _atomic, _progress, traits, models.
"""

from traitloop.measure._activations import Prompt
from traitloop.measure._persona import (
    PersonaDirection,
    fit_direction,
    persona_direction,
    project_prompts,
    project_responses,
    trait_examples,
)

__all__ = [
    "PersonaDirection",
    "Prompt",
    "fit_direction",
    "persona_direction",
    "project_prompts",
    "project_responses",
    "trait_examples",
]
