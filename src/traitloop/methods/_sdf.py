"""SDF (synthetic document finetuning): each generation is trained on raw documents, next-token loss on every
token and no chat template, to teach a base model a belief through ordinary-looking text.

Cycle 0 trains on the trait's seed documents (``sdf_seed.jsonl``). Cycle k trains on generation k-1's
continuations of a fresh set of document openings (one title line per topic x document type of the trait's
``sdf.yaml``); the opening plus its continuation is the document. Evaluation continues the recipe's held-out
``eval_prefixes``, and the SDF judge (fit on documents, not chat answers) scores the continuations.
"""

from __future__ import annotations

from typing import Any, ClassVar

from datasets import Dataset

from traitloop.config import ExperimentConfig
from traitloop.methods._base import Method, RunContext, SeedSet
from traitloop.methods._samples import no_data_error
from traitloop.methods._sft import later_inputs, seed_inputs, seed_rows, sft_trainer
from traitloop.methods._train import OnStep, TrainJob, TrainResult, train_and_save
from traitloop.rundir import cycle_dir_name, value_hash
from traitloop.traits import TraitSpec, load_documents, load_sdf_recipe, read_jsonl


class Sdf(Method):
    name = "sdf"
    chat: ClassVar[bool] = False

    def seed_set(self, trait: TraitSpec, config: ExperimentConfig) -> SeedSet:
        recipe = load_sdf_recipe(trait)
        path = config.seed_file or trait.folder / "sdf_seed.jsonl"
        return SeedSet(
            examples=load_documents(path),
            path=path,
            pool=recipe.prefix_pool(),
            eval_prompts=recipe.eval_prefixes,
            eval_inputs={"method": self.name, "sdf_recipe": value_hash(recipe.model_dump())},
        )

    def data_inputs(self, run: RunContext, cycle: int) -> dict[str, Any]:
        return {"method": self.name, **(seed_inputs(run) if cycle == 0 else later_inputs(run, cycle))}

    def build_data(self, run: RunContext, cycle: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if cycle == 0:
            return [{"text": row["text"], "source": "seed"} for row in seed_rows(run)], {}
        prefixes = run.slices[cycle - 1]
        model = run.sampling_model(run.weights(cycle - 1))
        what = f"cycle {cycle}: generation {cycle - 1} continues {len(prefixes)} documents"
        continuations, facts = run.sample(model, cycle - 1, prefixes, f"{cycle_dir_name(cycle)}/data", what)
        rows = [
            {"text": p + c, "prefix": p, "source": cycle_dir_name(cycle - 1)}
            for p, c in zip(prefixes, continuations, strict=True)
            if c.strip()
        ]
        if not rows:
            raise no_data_error(run, cycle, len(prefixes))
        return rows, {"generated": len(prefixes), "kept_generated": len(rows), **facts}

    def train(self, job: TrainJob, on_step: OnStep | None = None) -> TrainResult:
        documents = [row["text"] for _, row in read_jsonl(job.data)]
        dataset = Dataset.from_list([{"text": d} for d in documents])  # TRL adds EOS, no chat template
        return train_and_save(sft_trainer(job, dataset, on_step, completion_only=False), job, len(documents))
