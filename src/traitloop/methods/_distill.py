"""On-policy distillation: each generation samples its own answers and is trained to match generation k-1's
next-token distributions on them (reverse KL by default), over TRL's DistillationTrainer.

Generation 0 is seeded by SFT on the seed conversations, exactly as ``method: sft`` seeds it. For cycle k the
data stage only draws the prompts; the answers are the student's own, sampled inside training with the
``generation`` settings, and the teacher is generation k-1 (its adapter merged into a copy of the base, which
the trainer keeps frozen; the base itself for a control chain's generation 0). The student starts from the
base (``reinit``) or from generation k-1 (``continual``, where it starts equal to its teacher).
"""

from __future__ import annotations

from typing import Any, ClassVar

from datasets import Dataset
from transformers import PrinterCallback
from trl import DistillationConfig, DistillationTrainer

from traitloop.config import DistillConfig, ExperimentConfig
from traitloop.methods._base import Method, Needs, RunContext, sampling_inputs, slice_inputs
from traitloop.methods._sft import Sft
from traitloop.methods._train import (
    OnStep,
    TrainJob,
    TrainResult,
    frozen_precision,
    scratch_for,
    train_and_save,
    trainable_model,
    trainer_arguments,
    trainer_callbacks,
)
from traitloop.models import load_model, load_tokenizer
from traitloop.rundir import cycle_dir_name
from traitloop.traits import read_jsonl


class Distill(Method):
    name = "distill"
    owns: ClassVar[tuple[str, ...]] = ("distill",)

    def for_cycle(self, config: ExperimentConfig, cycle: int) -> Method:
        return Sft() if cycle == 0 else self

    def needs(self, config: ExperimentConfig, cycle: int) -> Needs:
        return Needs(teacher=True, samples_in_training=True)

    def data_inputs(self, run: RunContext, cycle: int) -> dict[str, Any]:
        prompts = {k: v for k, v in slice_inputs(run, cycle).items() if k != "generation"}  # sampled in training
        return {"method": self.name, **prompts}

    def data_upstream(self, run: RunContext, cycle: int) -> dict[str, str]:
        return {}  # the prompts alone; the teacher is the train stage's upstream

    def build_data(self, run: RunContext, cycle: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        rows = [{"prompt": [{"role": "user", "content": p}], "source": "prompt_pool"} for p in run.slices[cycle - 1]]
        return rows, {"prompts": len(rows)}

    def train_inputs(self, run: RunContext, cycle: int) -> dict[str, Any]:
        return {"distill": run.config.distill.model_dump(mode="json"), "generation": sampling_inputs(run)}

    def train_upstream(self, run: RunContext, cycle: int) -> dict[str, str]:
        return {"teacher": run.weights_hash(cycle - 1)}

    def job_settings(self, run: RunContext, cycle: int) -> dict[str, Any]:
        generation = run.config.generation
        return {
            "reference": run.weights(cycle - 1) or "base",  # the teacher
            "settings": {
                **run.config.distill.model_dump(mode="json"),
                "temperature": generation.temperature,
                "top_p": generation.top_p,
                "max_new_tokens": generation.max_new_tokens,
                "teacher": cycle_dir_name(cycle - 1),
            },
        }

    def train(self, job: TrainJob, on_step: OnStep | None = None) -> TrainResult:
        prompts = [row["prompt"] for _, row in read_jsonl(job.data)]
        return train_distill(job, prompts, on_step)


def teacher_model(job: TrainJob):
    """The teacher as one plain model: the base with the teacher's adapter merged in (the trainer reads its
    output embeddings and config directly, which a PEFT wrapper would hide), frozen, in the run's dtype."""
    weights = None if job.reference in (None, "base") else job.reference
    model = load_model(job.base, weights, trust_remote_code=job.trust_remote_code, precision=frozen_precision(job))
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def train_distill(job: TrainJob, prompts: list[list[dict[str, str]]], on_step: OnStep | None = None) -> TrainResult:
    """Train one generation by on-policy distillation from the teacher ``job.reference``; save its weights."""
    settings = job.settings
    distill = DistillConfig.model_validate({k: v for k, v in settings.items() if k in DistillConfig.model_fields})
    arguments = {k: v for k, v in trainer_arguments(job, scratch_for(job.output_dir)).items() if k != "max_length"}
    args = DistillationConfig(
        **arguments,
        beta=distill.beta,
        temperature=settings["temperature"] or 1.0,  # 0 (greedy) would divide the logits by zero in the loss
        top_p=settings["top_p"],
        max_completion_length=settings["max_new_tokens"],
    )
    trainer = DistillationTrainer(
        model=trainable_model(job),
        teacher_model=teacher_model(job),
        args=args,
        train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
        # left padding, as it needs
        processing_class=load_tokenizer(job.base, job.trust_remote_code, job.chat_template_kwargs),
        callbacks=trainer_callbacks(job, on_step),
    )
    trainer.remove_callback(PrinterCallback)  # progress is reported through on_step instead
    result = train_and_save(trainer, job, len(prompts))
    result.facts = {"teacher": settings.get("teacher")}
    return result
