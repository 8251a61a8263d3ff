"""What a run of a config draws on, resolved before any work: its trait, method, seed set, each cycle's prompts
and what every generation is evaluated on. The run itself and its memory plan resolve it here alike."""

from __future__ import annotations

from dataclasses import dataclass

from traitloop.config import MAIN_SUITE, NO_CONTEXT, ExperimentConfig
from traitloop.loop._check import check_config
from traitloop.loop._evals import EvalSet, config_eval_sets
from traitloop.methods import Method, SeedSet, get_method
from traitloop.traits import TraitSpec, load_trait, prompt_slices


@dataclass(frozen=True)
class Resolved:
    """A config's inputs, and what is wrong with them (a seed set smaller than ``seed_examples``)."""

    trait: TraitSpec
    method: Method
    seed_set: SeedSet
    slices: list[list[str]]  # per cycle 1..N: prompts (chat methods) or document prefixes (sdf)
    main_eval: EvalSet
    eval_sets: dict[str, EvalSet]  # the config's other eval sets, by name
    problems: list[str]


def resolve(config: ExperimentConfig) -> Resolved:
    """Check ``config`` against the registries, then resolve what a run of it draws on."""
    check_config(config)
    trait = load_trait(config.trait)
    method = get_method(config.method)
    seed_set = method.seed_set(trait, config)
    problems = []
    if config.seed_examples > len(seed_set.examples):
        problems.append(
            f"seed_examples is {config.seed_examples} but {seed_set.path} has only {len(seed_set.examples)} "
            f"{seed_set.what}"
        )
    slices = prompt_slices(
        seed_set.pool, seed_set.eval_prompts, config.seed, config.cycles, config.samples_per_cycle,
        config.prompt_sampling,
    )  # fmt: skip
    main = EvalSet(None, MAIN_SUITE if method.chat else "documents", NO_CONTEXT, seed_set.eval_prompts)
    return Resolved(trait, method, seed_set, slices, main, config_eval_sets(trait, config), problems)
