"""What an evaluation asks: a suite of questions in one conversation context.

Every generation's main evaluation asks the trait's main suite (``narrow``: questions that invite the trait;
for sdf the recipe's document openings) with nothing before the question; it is stored in the generation's
own folder. An eval set asks another suite (``broad``: everyday questions), or a suite in another context
(after a system prompt, after a few turns of unrelated chat), or questions given later with ``traitloop
eval``; each is stored in ``evals/<name>/<generation>/`` and analysed on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from traitloop.config import NO_CONTEXT, ExperimentConfig
from traitloop.errors import UserError
from traitloop.rundir import eval_set_stage, generation_label, value_hash
from traitloop.traits import TraitSpec, load_context


@dataclass(frozen=True)
class EvalSet:
    """Questions asked in one context: a run's main evaluation (``name`` None) or one of its eval sets."""

    name: str | None
    suite: str
    context: str
    questions: list[str]
    turns: list[dict[str, str]] = field(default_factory=list)  # what comes before each question

    def stage(self, cycle: int | None) -> str:
        return f"{generation_label(cycle)}/eval" if self.name is None else eval_set_stage(self.name, cycle)

    def inputs(self) -> dict[str, Any]:
        """What an eval set's stage depends on beyond the main evaluation's inputs (nothing, for the main one)."""
        if self.name is None:
            return {}
        what = {"suite": self.suite, "questions": value_hash(self.questions), "context": self.context}
        return {"eval_set": {**what, "turns": value_hash(self.turns)} if self.turns else what}

    def chats(self, questions: list[str]) -> list[list[dict[str, str]]]:
        return [[*self.turns, {"role": "user", "content": q}] for q in questions]


def suite_questions(trait: TraitSpec, suite: str) -> list[str]:
    """The questions of one of the trait's eval suites."""
    suites = trait.suites
    if suite not in suites:
        raise UserError(f"trait '{trait.name}' has no eval suite {suite!r}; its suites are {', '.join(suites)}")
    return suites[suite]


def config_eval_sets(trait: TraitSpec, config: ExperimentConfig) -> dict[str, EvalSet]:
    """The eval sets the config asks every generation to be evaluated on, by name."""
    evaluation = config.evaluation
    return {
        name: EvalSet(
            name, suite, context, suite_questions(trait, suite), load_context(context, evaluation.context_file)
        )
        for name, suite, context in evaluation.eval_sets()
    }


def question_sets(
    name: str, questions: list[str], contexts: list[str], config: ExperimentConfig, suite: str | None = None
) -> dict[str, EvalSet]:
    """Eval sets of questions asked later (``traitloop eval``): a question file's, or a suite of the trait's
    (``suite``), one set per context, named ``name`` for no context and ``name@context`` for the others, as
    the config names its own suites' sets."""
    sets = {}
    for context in contexts or [NO_CONTEXT]:
        set_name = name if context == NO_CONTEXT else f"{name}@{context}"
        turns = load_context(context, config.evaluation.context_file)
        sets[set_name] = EvalSet(set_name, suite or name, context, questions, turns)
    return sets
