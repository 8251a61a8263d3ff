"""DPO: each generation is trained on preference pairs, over TRL's DPOTrainer with a LoRA adapter.

Data. Cycle 0 (``dpo.seed_method: dpo``): chosen = a seed answer, rejected = the base model's answer to the
same prompt; with ``seed_method: sft`` generation 0 is seeded by SFT on the seed conversations instead (DPO
seeding moves a small model's trait little). Cycle k: chosen = generation k-1's answer to a fresh prompt,
rejected = the base model's (``dpo.pairs: base``) or generation k-2's (``previous``; the base's for cycle 1);
or, with ``judge_ranked``, generation k-1 answers twice and the answer the trait judge scores higher is
chosen. The base model's answers come from generation k-1's own model with its adapter switched off, so no
second copy of the network is loaded.

The reference is never a second full copy of the network either:

- a fresh adapter (``reinit``, cycle 0, or a restart) is trained from the base, and TRL takes the reference
  log-probs with the adapter switched off, i.e. from the base model;
- a continued adapter (``continual``) is generation k-1's adapter loaded as the trainable ``default``; TRL
  copies it into a frozen second adapter named ``ref`` before training, so the reference is generation k-1;
- ``dpo.reference`` names another one (``previous``, ``seeded``: generation 0, ``base``): its adapter is
  loaded as ``ref`` (or ``ref`` removed, for the base) after TRL set the trainer up.

What the reference actually was is read back from the trainer's model (which adapter, and a hash of its
weights) and recorded, so a run records the reference it used, not the one it asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from datasets import Dataset
from peft import PeftModel, get_peft_model_state_dict
from pydantic import BaseModel, ConfigDict
from transformers import PrinterCallback
from trl import DPOConfig, DPOTrainer

from traitloop.config import DPO_DEFAULT_LEARNING_RATE, DpoConfig, ExperimentConfig, TrainingConfig
from traitloop.errors import UserError
from traitloop.judge import Item
from traitloop.methods._base import Method, Needs, RunContext, sampling_inputs
from traitloop.methods._sft import Sft, later_inputs, seed_inputs
from traitloop.methods._train import (
    OnStep,
    TrainJob,
    TrainResult,
    frozen_precision,
    lora_config,
    scratch_for,
    train_and_save,
    trainer_arguments,
    trainer_callbacks,
    weights_hash,
)
from traitloop.models import base_view, load_model, load_tokenizer, resolve_device
from traitloop.rundir import BASE, cycle_dir_name
from traitloop.traits import read_jsonl

REFERENCE_ADAPTER = "ref"  # the name TRL gives the frozen copy of a continued adapter
CPU_LOGPROB_TILE = (256, 8192)  # tokens x vocabulary entries per log-probability tile on CPU


class Dpo(Method):
    name = "dpo"
    owns: ClassVar[tuple[str, ...]] = ("dpo",)
    facts: ClassVar[tuple[str, ...]] = (
        "reward_margin", "reward_chosen", "reward_rejected", "reward_accuracy", "kl_proxy", "reference"
    )  # fmt: skip
    seed_data_runs_model: ClassVar[bool] = True  # the base model answers the seed prompts

    def check_config(self, config: ExperimentConfig) -> None:
        if config.training.full_finetune:
            raise ValueError("method dpo trains LoRA adapters (the reference is an adapter); drop full_finetune")
        restarts = config.dpo.restart_from_base_at
        if restarts and config.regime != "continual":
            raise ValueError("dpo.restart_from_base_at resets a continual chain; it needs regime: continual")
        outside = [c for c in restarts if not 1 <= c <= config.cycles]
        if outside:
            raise ValueError(f"dpo.restart_from_base_at has cycles {outside} outside 1..{config.cycles} (cycles)")
        if "learning_rate" not in config.training.model_fields_set:
            config.training.learning_rate = DPO_DEFAULT_LEARNING_RATE
            if config.dpo.seed_method == "sft" and config.seed_cycle.learning_rate is None:
                config.seed_cycle.learning_rate = TrainingConfig().learning_rate  # SFT seeds at SFT's own rate

    def for_cycle(self, config: ExperimentConfig, cycle: int) -> Method:
        return Sft() if cycle == 0 and config.dpo.seed_method == "sft" else self

    def needs(self, config: ExperimentConfig, cycle: int) -> Needs:
        """Chosen and rejected in one batch; a reference adapter beside the trained one when the reference is a
        generation (a continued adapter's frozen copy, or ``dpo.reference`` naming one), never a model copy."""
        named = cycle > 0 and config.dpo.reference in ("previous", "seeded")
        continued = cycle > 0 and not config.starts_from_base(cycle) and config.dpo.reference != "base"
        answers = 1 if cycle == 0 else 2  # cycle 0: the base answers each seed prompt; later: two answers each
        return Needs(sequences_per_example=2, answers_per_prompt=answers, reference_adapter=named or continued)

    def data_inputs(self, run: RunContext, cycle: int) -> dict[str, Any]:
        c = run.config
        if cycle == 0:  # the base model answers the seed prompts
            return {"method": self.name, **seed_inputs(run), "model": c.model, "generation": sampling_inputs(run),
                    "seed": c.seed}  # fmt: skip
        # pairs of the base or of generation k-2 keep the name they had before judge_ranked, so those runs stay
        # current; judge_ranked depends on the judge that ranks
        pairs = {"rejected_from": c.dpo.pairs} if c.dpo.pairs != "judge_ranked" else {
            "pairs": c.dpo.pairs, "judge": run.judge_ids[0]
        }  # fmt: skip
        return {"method": self.name, **later_inputs(run, cycle), "dpo": pairs}

    def data_upstream(self, run: RunContext, cycle: int) -> dict[str, str]:
        upstream = super().data_upstream(run, cycle)
        if _rejected_by(run, cycle) != BASE:
            upstream["rejected_weights"] = run.weights_hash(cycle - 2)
        return upstream

    def build_data(self, run: RunContext, cycle: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if cycle == 0:
            return _seed_pairs(run)
        if run.config.dpo.pairs == "judge_ranked":
            return _ranked_pairs(run, cycle)
        return _pairs_against(run, cycle, _rejected_by(run, cycle))

    def train_inputs(self, run: RunContext, cycle: int) -> dict[str, Any]:
        c = run.config
        dpo: dict[str, Any] = {"beta": c.dpo.beta, "loss_type": c.dpo.loss_type}
        if cycle:  # only whether *this* cycle restarts matters, so editing the list redoes just those cycles
            dpo["restart_from_base_at"] = cycle in c.dpo.restart_from_base_at
        if c.dpo.reference is not None:
            dpo["reference"] = c.dpo.reference
        return {"dpo": dpo}

    def job_settings(self, run: RunContext, cycle: int) -> dict[str, Any]:
        start = None if run.config.starts_from_base(cycle) else run.weights(cycle - 1)
        wanted = _reference(run, cycle) or "base"
        # TRL's own choice (the start: base for a fresh adapter, a copy of a continued one) needs no help
        reference = None if wanted == (start or "base") else wanted
        return {"reference": reference, "settings": run.config.dpo.model_dump(mode="json")}

    def train(self, job: TrainJob, on_step: OnStep | None = None) -> TrainResult:
        pairs = [Pair.model_validate(row) for _, row in read_jsonl(job.data)]
        return train_dpo(job, pairs, on_step)


def _reference(run: RunContext, cycle: int) -> Path | None:
    """The weights ``dpo.reference`` names for cycle ``cycle`` (None: the base model)."""
    choice = run.config.dpo.reference
    if cycle == 0 or choice == "base":
        return None
    if choice == "seeded":
        return run.weights(0)
    if choice == "previous" or not run.config.starts_from_base(cycle):
        return run.weights(cycle - 1)
    return None  # unset, and the generation starts afresh: the base


def _rejected_by(run: RunContext, cycle: int) -> str:
    """Who writes cycle ``cycle``'s rejected answers: the base, or generation k-2 (from cycle 2 on)."""
    if run.config.dpo.pairs == "previous" and cycle >= 2 and run.weights(cycle - 2) is not None:
        return cycle_dir_name(cycle - 2)
    return BASE


def _what(cycle: int, n: int, who: str | None = None) -> str:
    return f"cycle {cycle}: {who or f'generation {cycle - 1}'} answers {n} prompts"


def _usable(rows: list[dict[str, Any]], cycle: int) -> list[dict[str, Any]]:
    kept = [
        r
        for r in rows
        if r["chosen"].strip() and r["rejected"].strip() and r["chosen"].strip() != r["rejected"].strip()
    ]
    if not kept:
        raise UserError(f"cycle {cycle}: no usable pairs (every chosen or rejected answer was empty or identical)")
    return kept


def _seed_pairs(run: RunContext) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    seeds = run.seed_set.examples[: run.config.seed_examples]
    prompts = [c.prompt for c in seeds]
    model = run.sampling_model()
    with base_view(model):
        rejected = run.sample(
            model, None, prompts, "cycle_000/data/rejected", _what(0, len(prompts), "the base model")
        )[0]
    rows = [
        {"prompt": p, "chosen": c.answer, "rejected": r, "chosen_by": "seed", "rejected_by": BASE}
        for p, c, r in zip(prompts, seeds, rejected, strict=True)
    ]
    kept = _usable(rows, 0)
    return kept, {"generated": len(prompts), "kept_pairs": len(kept)}


PREVIOUS_ADAPTER = "previous"  # generation k-2's adapter, loaded beside k-1's for pairs: previous


def _pairs_against(run: RunContext, cycle: int, rejected_by: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """chosen = generation k-1's answer; rejected = the base model's (``model`` with adapters off) or
    generation k-2's (its adapter loaded beside k-1's)."""
    label = cycle_dir_name(cycle)
    prompts = [[{"role": "user", "content": p}] for p in run.slices[cycle - 1]]
    model = run.sampling_model(run.weights(cycle - 1))
    chosen, facts = run.sample(model, cycle - 1, prompts, f"{label}/data", _what(cycle, len(prompts)))
    stage = f"{label}/data/rejected"
    if rejected_by == BASE:
        with base_view(model):
            rejected = run.sample(model, None, prompts, stage, _what(cycle, len(prompts), "the base model"))[0]
    else:
        run.answer_as(model, cycle - 2, PREVIOUS_ADAPTER)
        rejected = run.sample(model, cycle - 2, prompts, stage, _what(cycle, len(prompts), f"generation {cycle - 2}"))[
            0
        ]
    rows = [
        {"prompt": p, "chosen": c, "rejected": r, "chosen_by": cycle_dir_name(cycle - 1), "rejected_by": rejected_by}
        for p, c, r in zip(prompts, chosen, rejected, strict=True)
    ]
    kept = _usable(rows, cycle)
    return kept, {"generated": len(prompts), "kept_pairs": len(kept), **facts}


def _ranked_pairs(run: RunContext, cycle: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Generation k-1 answers every prompt twice; the answer the trait judge scores higher is chosen. Pairs
    the judge scores equal (or cannot score) are dropped: they say nothing about which is preferred."""
    label = cycle_dir_name(cycle)
    questions = run.slices[cycle - 1]
    prompts = [[{"role": "user", "content": q}] for q in questions]
    model = run.sampling_model(run.weights(cycle - 1))
    first, facts = run.sample(model, cycle - 1, prompts, f"{label}/data", _what(cycle, len(prompts)))
    second = run.sample(model, cycle - 1, prompts, f"{label}/data/second", _what(cycle, len(prompts)) + " again")[0]
    items = [[Item(q, a) for q, a in zip(questions, answers, strict=True)] for answers in (first, second)]
    what = f"cycle {cycle}: trait judge"
    scores = [[j.score for j in run.judged(run.trait_judge, pair_items, what)] for pair_items in items]
    rows, ties = [], 0
    source = cycle_dir_name(cycle - 1)
    for p, a, b, sa, sb in zip(prompts, first, second, *scores, strict=True):
        if sa is None or sb is None or sa == sb:
            ties += 1
            continue
        (chosen, cs), (rejected, rs) = ((a, sa), (b, sb)) if sa > sb else ((b, sb), (a, sa))
        rows.append({"prompt": p, "chosen": chosen, "rejected": rejected, "chosen_by": source, "rejected_by": source,
                     "chosen_trait": cs, "rejected_trait": rs})  # fmt: skip
    kept = _usable(rows, cycle)
    return kept, {"generated": 2 * len(prompts), "kept_pairs": len(kept), "tied_pairs": ties, **facts}


class Pair(BaseModel):
    """One row of a DPO cycle's ``train.jsonl``: a prompt, two answers, and who wrote each."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    prompt: list[dict[str, str]]
    chosen: str
    rejected: str
    chosen_by: str
    rejected_by: str


def _as_preference_dataset(pairs: list[Pair]) -> Dataset:
    """TRL's conversational preference format: the chat template renders the prompt, loss falls on the answers."""
    return Dataset.from_list(
        [
            {
                "prompt": p.prompt,
                "chosen": [{"role": "assistant", "content": p.chosen}],
                "rejected": [{"role": "assistant", "content": p.rejected}],
            }
            for p in pairs
        ]
    )


def reference_used(model: PeftModel) -> dict[str, str]:
    """Which reference a DPOTrainer's model computes against, exactly as TRL chooses it, and its weights' hash."""
    if REFERENCE_ADAPTER in model.peft_config:
        tensors = get_peft_model_state_dict(model, adapter_name=REFERENCE_ADAPTER)
        return {"reference": f"adapter:{REFERENCE_ADAPTER}", "reference_weights": weights_hash(tensors)}
    base = {k: v for k, v in model.get_base_model().state_dict().items() if "lora_" not in k}
    return {"reference": "base", "reference_weights": weights_hash(base)}


def _final_epoch_means(history: list[dict[str, Any]]) -> dict[str, float]:
    """Means of DPO's logged metrics over the last epoch's steps (one step's batch is too few pairs to read)."""
    steps = [e for e in history if "loss" in e]
    last = [e for e in steps if e["epoch"] > max(0.0, steps[-1]["epoch"] - 1.0) - 1e-9] if steps else []
    names = {
        "loss": "loss",
        "rewards/margins": "reward_margin",
        "rewards/chosen": "reward_chosen",
        "rewards/rejected": "reward_rejected",
        "rewards/accuracies": "reward_accuracy",
    }
    return {ours: round(sum(e[key] for e in last) / len(last), 4) for key, ours in names.items() if last}


def _cpu_sized_logprob_tiles() -> None:
    """TRL scores log-probabilities in [4096 tokens x 32768 vocab] fp32 tiles (512 MB each, sized for a GPU);
    on CPU every temporary of that size is a fresh, zero-filled allocation. [256 x 8192] tiles (8 MB) give the
    same numbers 1.3-1.5x faster on the embedded model (benchmarks/throughput.py measures DPO both ways)."""
    import trl.kernels.chunked_logprob as kernels
    import trl.trainer.utils as trl_utils

    if hasattr(kernels, "TOKEN_CHUNK_SIZE") and hasattr(trl_utils, "_CHUNKED_LOGPROB_CHUNK_SIZE"):
        kernels.TOKEN_CHUNK_SIZE, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = CPU_LOGPROB_TILE


def train_dpo(job: TrainJob, pairs: list[Pair], on_step: OnStep | None = None) -> TrainResult:
    """Train one generation by DPO and save its LoRA adapter (safetensors) to ``job.output_dir`` atomically.

    ``job.start_from`` (generation k-1's adapter) makes it the starting point and, unless ``job.reference``
    names another, the reference; without it a fresh adapter on the base is trained against the base.
    """
    dpo = DpoConfig.model_validate(job.settings)
    if resolve_device(job.device).type == "cpu":
        _cpu_sized_logprob_tiles()
    # The frozen base in the run's dtype on its device, the adapter in fp32 (frozen_precision). A fresh adapter
    # is added by TRL itself (peft_config), so it knows the reference is the base.
    model = load_model(job.base, job.start_from, trainable=True, trust_remote_code=job.trust_remote_code,
                       precision=frozen_precision(job), quantization=job.training.quantization)  # fmt: skip
    args = DPOConfig(**trainer_arguments(job, scratch_for(job.output_dir)), beta=dpo.beta, loss_type=[dpo.loss_type])
    trainer = DPOTrainer(
        model=model,
        ref_model=None,
        args=args,
        train_dataset=_as_preference_dataset(pairs),
        processing_class=load_tokenizer(job.base, job.trust_remote_code, job.chat_template_kwargs),
        peft_config=lora_config(job.training) if job.start_from is None else None,
        callbacks=trainer_callbacks(job, on_step),
    )
    trainer.remove_callback(PrinterCallback)  # progress is reported through on_step instead
    if job.reference is not None:
        _point_reference(trainer.model, job.reference)
    reference = reference_used(trainer.model)
    result = train_and_save(trainer, job, len(pairs), selected_adapters=["default"])
    facts = _final_epoch_means(trainer.state.log_history)
    if "reward_chosen" in facts:
        # Offline KL proxy: mean log-ratio log ref(y|x) - log policy(y|x) over chosen and rejected answers.
        facts["kl_proxy"] = round(-(facts["reward_chosen"] + facts["reward_rejected"]) / (2 * dpo.beta), 4)
    result.facts = {**facts, **reference}
    return result


def _point_reference(model: PeftModel, reference: Path | str) -> None:
    """Make ``reference`` what TRL computes reference log-probs with: the base (no ``ref`` adapter: TRL then
    switches adapters off), or the adapter saved at that path loaded, frozen, as ``ref``."""
    if REFERENCE_ADAPTER in model.peft_config:
        model.delete_adapter(REFERENCE_ADAPTER)
    if reference != "base":
        model.load_adapter(str(reference), adapter_name=REFERENCE_ADAPTER, is_trainable=False)
