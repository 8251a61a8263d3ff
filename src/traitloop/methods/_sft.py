"""SFT: each generation is finetuned on chat answers, with the loss on the assistant's answer only.

Cycle 0 trains on the first ``seed_examples`` seed conversations. Cycle k trains on generation k-1's answers
to a fresh set of prompts, filtered and topped up (``min_coherence``, ``min_trait``, ``max_trait``), with
``mix_seed_examples`` seed conversations mixed in (from the whole seed file, or with ``mix_from: seeded``
only from the ones generation 0 was trained on, as the study did). Training is TRL's SFTTrainer over a LoRA
adapter (or every weight with ``full_finetune``); ``continual`` continues generation k-1's weights.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

from datasets import Dataset
from transformers import PrinterCallback
from trl import SFTConfig, SFTTrainer

from traitloop.methods._base import Method, RunContext, slice_inputs
from traitloop.methods._samples import filter_inputs, filters_on, no_data_error, sample_answers
from traitloop.methods._train import (
    OnStep,
    TrainJob,
    TrainResult,
    scratch_for,
    train_and_save,
    trainable_model,
    trainer_arguments,
    trainer_callbacks,
)
from traitloop.models import load_tokenizer
from traitloop.rundir import SAMPLES_FILE, TRAIN_DATA, cycle_dir_name
from traitloop.traits import Conversation, load_conversations


def seed_inputs(run: RunContext) -> dict[str, Any]:
    """What a seed cycle's data depends on: the seed file (by hash) and how many of its examples."""
    return {"seed_file": run.seed_hash, "seed_examples": run.config.seed_examples}


def later_inputs(run: RunContext, cycle: int) -> dict[str, Any]:
    """What a later cycle's data depends on: its prompts and sampling, the filters and the seed mixing."""
    c = run.config
    fields = {**slice_inputs(run, cycle), **filter_inputs(run), "mix_seed_examples": c.mix_seed_examples}
    if c.mix_seed_examples:
        fields["seed_file"] = run.seed_hash
        if c.mix_from != "all":
            fields["mix_from"] = c.mix_from
    return fields


def seed_rows(run: RunContext) -> list[dict[str, Any]]:
    """Generation 0's training rows: the first ``seed_examples`` seed examples."""
    return [{**example.model_dump(), "source": "seed"} for example in run.seed_set.examples[: run.config.seed_examples]]


class Sft(Method):
    name = "sft"
    filters_samples: ClassVar[bool] = True

    def data_inputs(self, run: RunContext, cycle: int) -> dict[str, Any]:
        # sft predates the ``method`` field of these inputs; naming no method keeps earlier runs current
        return seed_inputs(run) if cycle == 0 else later_inputs(run, cycle)

    def data_outputs(self, run: RunContext, cycle: int) -> list[str]:
        return [TRAIN_DATA, SAMPLES_FILE] if cycle and filters_on(run) else [TRAIN_DATA]

    def build_data(self, run: RunContext, cycle: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if cycle == 0:
            return seed_rows(run), {}
        prompts = run.slices[cycle - 1]
        answers, facts = sample_answers(run, run.sampling_model(run.weights(cycle - 1)), cycle, prompts)
        rows = [
            {
                "messages": [{"role": "user", "content": p}, {"role": "assistant", "content": a.pop("answer")}],
                "source": cycle_dir_name(cycle - 1),
                **a,  # the scores it was filtered by
            }
            for p, a in zip(prompts, answers, strict=True)
            if a is not None
        ]
        if not rows:
            raise no_data_error(run, cycle, len(prompts))
        kept = len(rows)
        rows += _mixed_seeds(run, cycle)
        return rows, {"generated": len(prompts), "kept_generated": kept, **facts}

    def train(self, job: TrainJob, on_step: OnStep | None = None) -> TrainResult:
        conversations = load_conversations(job.data)
        return train_and_save(sft_trainer(job, prompt_completion(conversations), on_step), job, len(conversations))


def _mixed_seeds(run: RunContext, cycle: int) -> list[dict[str, Any]]:
    """``mix_seed_examples`` seed conversations, drawn afresh for each cycle (seeded by the cycle)."""
    c = run.config
    if not c.mix_seed_examples:
        return []
    pool = run.seed_set.examples[: c.seed_examples] if c.mix_from == "seeded" else run.seed_set.examples
    rng = random.Random(run.stage_seed(f"{cycle_dir_name(cycle)}/mix"))
    return [
        {**example.model_dump(), "source": "seed"} for example in rng.sample(pool, min(c.mix_seed_examples, len(pool)))
    ]


def prompt_completion(conversations: list[Conversation]) -> Dataset:
    """TRL's conversational prompt-completion format: the loss falls on the completion alone."""
    return Dataset.from_list(
        [{"prompt": c.prompt, "completion": [{"role": "assistant", "content": c.answer}]} for c in conversations]
    )


def sft_trainer(job: TrainJob, dataset: Dataset, on_step: OnStep | None, completion_only: bool = True) -> SFTTrainer:
    """TRL's SFTTrainer on ``dataset`` for ``job``: prompt-completion rows (loss on the answer), or plain
    ``text`` rows with ``completion_only=False`` (loss on every token)."""
    tokenizer = load_tokenizer(job.base, job.trust_remote_code, job.chat_template_kwargs)
    tokenizer.padding_side = "right"
    arguments = trainer_arguments(job, scratch_for(job.output_dir))
    # padding-free: each batch one flattened sequence, every example masked to itself by transformers from its
    # position ids. TRL leaves truncation to the caller there, so it is done below exactly as TRL does it padded.
    padding_free = job.training.collation == "padding_free"
    if padding_free:
        arguments["max_length"] = None
    args = SFTConfig(**arguments, completion_only_loss=completion_only, padding_free=padding_free)
    trainer = SFTTrainer(
        model=trainable_model(job),
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=trainer_callbacks(job, on_step),
    )
    trainer.remove_callback(PrinterCallback)  # progress is reported through on_step instead
    if padding_free:
        trainer.train_dataset = _truncated(trainer.train_dataset, job.training.max_length)
    return trainer


def _truncated(dataset: Dataset, max_length: int) -> Dataset:
    """Tokenized rows cut to ``max_length`` from the start, rows left with no loss dropped: TRL's truncation of
    padded batches (``truncation_mode: keep_start``), for padding-free ones."""
    cut = dataset.map(lambda row: {"input_ids": row["input_ids"][:max_length], "labels": row["labels"][:max_length]})
    return cut.filter(lambda row: any(label != -100 for label in row["labels"]))
