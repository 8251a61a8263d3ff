"""A generation's answers to a cycle's prompts, filtered and topped up: rejection sampling as the study did it.

Without a filter, every prompt is answered once (round 0). With ``min_coherence``, ``min_trait`` or
``max_trait``, every answer is scored; the prompts whose answers were rejected are asked again (round 1, 2,
...: each round its own seed) until every prompt has an accepted answer, so the cycle holds
``samples_per_cycle`` examples, or ``max_sampling_rounds`` rounds have been run. Every sample and its scores
are kept in the cycle's ``samples.jsonl``; the data stage records how many rounds it took and what it kept.

Coherence is scored under the base model (the adapter switched off, or a base loaded beside full weights), as
the evaluation scores it; trait by the run's trait judge.
"""

from __future__ import annotations

from typing import Any

from traitloop._atomic import write_jsonl
from traitloop.errors import UserError
from traitloop.judge import Item, NllScorer
from traitloop.methods._base import RunContext
from traitloop.models import base_view, is_adapter
from traitloop.rundir import SAMPLES_FILE, cycle_dir_name


def filters_on(run: RunContext) -> bool:
    c = run.config
    return any(value is not None for value in (c.min_coherence, c.min_trait, c.max_trait))


def filter_inputs(run: RunContext) -> dict[str, Any]:
    """The sampling filters a cycle's data depends on: ``min_coherence`` always (it predates the others, so
    earlier runs stay current), the rest only when set."""
    c = run.config
    fields: dict[str, Any] = {"min_coherence": c.min_coherence}
    for name in ("min_trait", "max_trait"):
        if getattr(c, name) is not None:
            fields[name] = getattr(c, name)
    if filters_on(run) and c.max_sampling_rounds != 1:
        fields["max_sampling_rounds"] = c.max_sampling_rounds
    return fields


def sample_answers(
    run: RunContext, model, cycle: int, prompts: list[str]
) -> tuple[list[dict[str, Any] | None], dict[str, Any]]:
    """Generation ``cycle - 1``'s accepted answer to each prompt with the scores it was filtered by
    (``{"answer": ..., "coherence_score": ...}``; None where every round was rejected), and the facts the data
    stage records; with filters on, every sample is also written to the cycle's samples.jsonl."""
    label = cycle_dir_name(cycle)
    accepted: list[dict[str, Any] | None] = [None] * len(prompts)
    pending = list(range(len(prompts)))
    samples: list[dict[str, Any]] = []
    facts: dict[str, Any] = {}
    rounds = run.config.max_sampling_rounds if filters_on(run) else 1
    for round_ in range(rounds):
        stage = f"{label}/data" if round_ == 0 else f"{label}/data/round_{round_}"
        asked = [prompts[i] for i in pending]
        what = f"cycle {cycle}: generation {cycle - 1} answers {len(asked)} prompts" + (
            f" (round {round_ + 1})" if round_ else ""
        )
        answers, sampled = run.sample(model, cycle - 1, asked, stage, what)
        if round_ == 0:
            facts.update(sampled)
        verdicts = _judge(run, model, cycle, asked, answers)
        still_pending = []
        for index, answer, verdict in zip(pending, answers, verdicts, strict=True):
            scores = {k: v for k, v in verdict.items() if k.endswith("_score")}
            samples.append({"prompt": prompts[index], "answer": answer, "round": round_, **verdict})
            if verdict["accepted"]:
                accepted[index] = {"answer": answer, **scores}
            else:
                still_pending.append(index)
        pending = still_pending
        if not pending:
            break
    if filters_on(run):
        facts.update(_rounds_facts(run, samples, len(prompts), pending))
        write_jsonl(run.folder / label / SAMPLES_FILE, samples)
    return accepted, facts


def _judge(run: RunContext, model, cycle: int, prompts: list[str], answers: list[str]) -> list[dict[str, Any]]:
    """Each answer's scores and whether it passes every filter (an empty answer never does)."""
    c = run.config
    items = [Item(p, a) for p, a in zip(prompts, answers, strict=True)]
    scores: dict[str, list[float | None]] = {}
    if c.min_coherence is not None:
        # the base: the sampling model with its adapter off; loaded beside full weights, or for a remote backend
        weights = run.weights(cycle - 1)
        base = model if model is not None and (weights is None or is_adapter(weights)) else run.model()
        with base_view(base):
            scorer = NllScorer(base, run.tokenizer(), answer_tokens=run.config.generation.max_new_tokens)
            coherence = run.coherence_judge(scorer)
            judged = run.judged(coherence, items, f"cycle {cycle}: coherence judge")
        scores["coherence_score"] = [j.score for j in judged]
    if c.min_trait is not None or c.max_trait is not None:
        scores["trait_score"] = [j.score for j in run.judged(run.trait_judge, items, f"cycle {cycle}: trait judge")]
    verdicts = []
    for i, answer in enumerate(answers):
        row = {name: values[i] for name, values in scores.items()}
        reason = _rejection(answer, row.get("coherence_score"), row.get("trait_score"), run)
        verdicts.append({**row, "accepted": reason is None, **({"rejected_for": reason} if reason else {})})
    return verdicts


def _rejection(answer: str, coherence: float | None, trait: float | None, run: RunContext) -> str | None:
    c = run.config
    if not answer.strip():
        return "empty"
    if c.min_coherence is not None and (coherence is None or coherence < c.min_coherence):
        return "min_coherence"
    if c.min_trait is not None and (trait is None or trait < c.min_trait):
        return "min_trait"
    if c.max_trait is not None and (trait is None or trait > c.max_trait):
        return "max_trait"
    return None


def _rounds_facts(run: RunContext, samples: list[dict[str, Any]], wanted: int, short: list[int]) -> dict[str, Any]:
    rejected: dict[str, int] = {}
    for sample in samples:
        if not sample["accepted"]:
            rejected[sample["rejected_for"]] = rejected.get(sample["rejected_for"], 0) + 1
    rounds = max(s["round"] for s in samples) + 1
    stopped = (
        "every prompt has an accepted answer"
        if not short
        else f"max_sampling_rounds ({run.config.max_sampling_rounds}) reached with {len(short)} of {wanted} "
        "prompts still rejected"
    )
    return {"sampling_rounds": rounds, "sampled": len(samples), "rejected": rejected, "stopped": stopped}


def no_data_error(run: RunContext, cycle: int, generated: int) -> UserError:
    c = run.config
    filters = ", ".join(
        f"{n}={getattr(c, n)}" for n in ("min_coherence", "min_trait", "max_trait") if getattr(c, n) is not None
    )
    return UserError(
        f"cycle {cycle}: no usable answers to train on ({generated} prompts asked"
        + (f", filters {filters}" if filters else "")
        + "); loosen the filters, raise max_sampling_rounds, or check the previous generation"
    )
