"""Each method's training set for a cycle, written to the cycle's ``train.jsonl``.

- sft: cycle 0 = seed conversations; cycle k = generation k-1's answers to a fresh slice of prompts.
- dpo: pairs. Cycle 0: chosen = a seed answer, rejected = the base model's answer to the same prompt.
  Cycle k: chosen = generation k-1's answer to a fresh prompt, rejected = the base model's answer (or, with
  ``dpo.rejected_from: previous``, generation k-2's; cycle 1 has no generation -1, so the base's).
- sdf: raw documents. Cycle 0 = seed documents; cycle k = generation k-1's continuations of a fresh slice
  of document prefixes (prefix + continuation is the document).

The base model's answers come from generation k-1's own model with its adapter switched off, so no second
copy of the network is loaded.
"""

from __future__ import annotations

import random
from typing import Any

from traitloop._atomic import write_jsonl
from traitloop.errors import UserError
from traitloop.judge import Item, base_nll_scorer
from traitloop.loop._evaluate import base_view
from traitloop.loop._run import Run, stage_seed
from traitloop.loop._rundir import BASE, TRAIN_DATA, cycle_dir_name
from traitloop.models import is_adapter

PREVIOUS_ADAPTER = "previous"  # generation k-2's adapter, loaded beside k-1's for rejected_from: previous


def build_training_set(run: Run, cycle: int) -> dict[str, Any]:
    """Write cycle ``cycle``'s train.jsonl for the run's method; return the facts the data stage records."""
    builders = {"sft": _sft_data, "dpo": _dpo_data, "sdf": _sdf_data}
    rows, facts = builders[run.config.method](run, cycle)
    write_jsonl(run.folder / cycle_dir_name(cycle) / TRAIN_DATA, rows)
    return {"examples": len(rows), **facts}


def data_upstream(run: Run, cycle: int) -> dict[str, str]:
    """Hashes of the generations a cycle's data comes from (k-1, and k-2 for dpo's rejected_from: previous)."""
    if cycle == 0:
        return {}
    upstream = {"weights": run.weights_hash(cycle - 1)}
    if _rejected_by(run, cycle) != BASE:
        upstream["rejected_weights"] = run.weights_hash(cycle - 2)
    return upstream


def _no_data(run: Run, cycle: int, generated: int) -> UserError:
    return UserError(
        f"cycle {cycle}: no usable answers to train on ({generated} generated, min_coherence="
        f"{run.config.min_coherence}); lower min_coherence or check the previous generation"
    )


def _sft_data(run: Run, cycle: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    config = run.config
    if cycle == 0:
        return [{**c.model_dump(), "source": "seed"} for c in run.seeds[: config.seed_examples]], {}
    label = cycle_dir_name(cycle)
    prompts = run.slices[cycle - 1]
    model = run.model(run.weights(cycle - 1))
    answers, facts = run.sample(model, cycle - 1, prompts, f"{label}/data", _what(cycle, len(prompts)))
    rows = [
        {
            "messages": [{"role": "user", "content": p}, {"role": "assistant", "content": a}],
            "source": cycle_dir_name(cycle - 1),
        }
        for p, a in zip(prompts, answers, strict=True)
        if a.strip()
    ]
    if config.min_coherence is not None:  # scored under the base: full weights have no adapter to switch off
        base = model if is_adapter(run.weights(cycle - 1)) else run.model()
        rows = _filter_by_coherence(run, base, rows)
    if not rows:
        raise _no_data(run, cycle, len(prompts))
    kept = len(rows)
    if config.mix_seed_examples:
        rng = random.Random(stage_seed(config.seed, f"{label}/mix"))
        mixed = rng.sample(run.seeds, min(config.mix_seed_examples, len(run.seeds)))
        rows += [{**c.model_dump(), "source": "seed"} for c in mixed]
    return rows, {"generated": len(prompts), "kept_generated": kept, **facts}


def _what(cycle: int, n: int) -> str:
    return f"cycle {cycle}: generation {cycle - 1} answers {n} prompts"


def _filter_by_coherence(run: Run, model, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items = [Item(r["messages"][0]["content"], r["messages"][1]["content"]) for r in rows]
    with base_view(model):
        judgements = run.coherence_judge(base_nll_scorer(model, run.tokenizer()))(items)
    threshold = run.config.min_coherence
    kept = []
    for row, judgement in zip(rows, judgements, strict=True):
        if judgement.score is not None and judgement.score >= threshold:
            kept.append({**row, "coherence_score": judgement.score})
    return kept


def _rejected_by(run: Run, cycle: int) -> str:
    """Who writes cycle ``cycle``'s rejected answers: the base, or generation k-2 (from cycle 2 on)."""
    if run.config.method == "dpo" and run.config.dpo.rejected_from == "previous" and cycle >= 2:
        return cycle_dir_name(cycle - 2)
    return BASE


def _dpo_data(run: Run, cycle: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    label = cycle_dir_name(cycle)
    if cycle == 0:
        seeds = run.seeds[: run.config.seed_examples]
        prompts, chosen, chosen_by = [c.prompt for c in seeds], [c.answer for c in seeds], "seed"
        model = run.model()
        facts: dict[str, Any] = {}
    else:
        prompts = [[{"role": "user", "content": p}] for p in run.slices[cycle - 1]]
        chosen_by = cycle_dir_name(cycle - 1)
        model = run.model(run.weights(cycle - 1))
        chosen, facts = run.sample(model, cycle - 1, prompts, f"{label}/data", _what(cycle, len(prompts)))
    rejected_by = _rejected_by(run, cycle)
    rejected = _rejected_answers(run, model, prompts, cycle, rejected_by)
    rows = [
        {"prompt": p, "chosen": c, "rejected": r, "chosen_by": chosen_by, "rejected_by": rejected_by}
        for p, c, r in zip(prompts, chosen, rejected, strict=True)
        if c.strip() and r.strip() and c.strip() != r.strip()
    ]
    if not rows:
        raise UserError(f"cycle {cycle}: no usable pairs (every chosen or rejected answer was empty or identical)")
    return rows, {"generated": len(prompts), "kept_pairs": len(rows), **facts}


def _rejected_answers(run: Run, model, prompts: list[list[dict[str, str]]], cycle: int, by: str) -> list[str]:
    """The rejected side: the base model (``model`` with adapters off) or generation k-2's adapter."""
    stage = f"{cycle_dir_name(cycle)}/data/rejected"
    what = f"cycle {cycle}: {'the base model' if by == BASE else f'generation {cycle - 2}'} answers {len(prompts)}"
    if by == BASE:
        with base_view(model):
            return run.sample(model, None, prompts, stage, what)[0]
    if run.config.generation.backend == "local":
        model.load_adapter(str(run.weights(cycle - 2)), adapter_name=PREVIOUS_ADAPTER)
        model.set_adapter(PREVIOUS_ADAPTER)
    return run.sample(model, cycle - 2, prompts, stage, what)[0]


def _sdf_data(run: Run, cycle: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if cycle == 0:
        return [{"text": d.text, "source": "seed"} for d in run.seeds[: run.config.seed_examples]], {}
    prefixes = run.slices[cycle - 1]
    model = run.model(run.weights(cycle - 1))
    what = f"cycle {cycle}: generation {cycle - 1} continues {len(prefixes)} documents"
    continuations, facts = run.sample(model, cycle - 1, prefixes, f"{cycle_dir_name(cycle)}/data", what)
    rows = [
        {"text": p + c, "prefix": p, "source": cycle_dir_name(cycle - 1)}
        for p, c in zip(prefixes, continuations, strict=True)
        if c.strip()
    ]
    if not rows:
        raise _no_data(run, cycle, len(prefixes))
    return rows, {"generated": len(prefixes), "kept_generated": len(rows), **facts}
