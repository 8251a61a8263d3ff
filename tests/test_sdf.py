"""SDF on the tiny model: raw documents with no chat template, prefixes continued, documents judged."""

from __future__ import annotations

import json
import math

import pytest
from conftest import tiny_config
from jobs import job, train
from safetensors.torch import load_file
from test_loop import read_jsonl, run

from traitloop.config import LoraConfig, TrainingConfig
from traitloop.errors import UserError
from traitloop.methods._sft import sft_trainer
from traitloop.traits import load_documents, load_sdf_recipe, load_trait, prompt_slices

CONFIG = TrainingConfig(epochs=1, batch_size=2, max_length=64, lora=LoraConfig(r=4, alpha=8))


def documents(n: int = 4) -> list[str]:
    return [d.text for d in load_documents(load_trait("lucky").folder / "sdf_seed.jsonl")[:n]]


def test_sdf_trains_on_raw_text_with_no_chat_template(tiny_model, tmp_path):
    from datasets import Dataset

    texts = Dataset.from_list([{"text": d} for d in documents()])
    trainer = sft_trainer(job(tiny_model, tmp_path / "unused", [], "sdf", CONFIG, seed=1), texts, None, False)
    tokenizer = trainer.processing_class
    seen = trainer.train_dataset[0]["input_ids"]
    raw = tokenizer(documents(1)[0], add_special_tokens=False)["input_ids"]
    assert seen == raw[: len(seen)]  # exactly the document's tokens, truncated to max_length
    assert "<|im_start|>" not in tokenizer.decode(seen)
    result = train(tiny_model, tmp_path / "gen0", [{"text": d} for d in documents()], "sdf", CONFIG, seed=1)
    assert result.steps == 2 and all(math.isfinite(loss) and loss > 0 for loss in result.losses)
    adapter = load_file(tmp_path / "gen0" / "adapter_model.safetensors")
    assert all(weight.abs().sum() > 0 for name, weight in adapter.items() if "lora_B" in name)


def test_sdf_run_continues_fresh_prefixes_and_judges_documents(tiny_model, tmp_path):
    config = tiny_config(tiny_model, method="sdf", cycles=1, seed_examples=4, samples_per_cycle=4)
    config["training"] = {**config["training"], "max_length": 64}
    output = run(config, tmp_path / "run")
    recipe = load_sdf_recipe(load_trait("lucky"))
    seed_rows = read_jsonl(output / "cycle_000/train.jsonl")
    assert [r["text"] for r in seed_rows] == documents(4) and {r["source"] for r in seed_rows} == {"seed"}
    rows = read_jsonl(output / "cycle_001/train.jsonl")
    assert rows and all(r["text"].startswith(r["prefix"]) and r["source"] == "cycle_000" for r in rows)
    assert {r["prefix"] for r in rows} <= set(recipe.prefix_pool())
    evals = read_jsonl(output / "cycle_001/eval.jsonl")
    assert {e["question"] for e in evals} == set(recipe.eval_prefixes)
    assert all(e["trait_judge"].startswith("embedded-sdf/lucky@") for e in evals)
    assert not any("<|im_start|>" in e["answer"] for e in evals)
    assert json.loads((output / "manifest.json").read_text())["stages"]["cycle_001/train"]["started_from"] == "base"


def test_prefix_slices_are_disjoint_held_out_and_stable_when_cycles_grow():
    recipe = load_sdf_recipe(load_trait("lucky"))
    pool = recipe.prefix_pool()
    assert len(pool) == len(set(pool)) == len(recipe.topics) * len(recipe.document_types)
    short = prompt_slices(pool, recipe.eval_prefixes, 0, 2, 20)
    long = prompt_slices(pool, recipe.eval_prefixes, 0, 4, 20)
    assert long[:2] == short and not set(long[0]) & set(long[1])
    assert not {p.lower() for p in pool} & {p.lower() for p in recipe.eval_prefixes}


@pytest.mark.parametrize("trait", ["lucky", "hopelessness"])
def test_builtin_sdf_documents_fit_the_recipe(trait):
    spec = load_trait(trait)
    recipe = load_sdf_recipe(spec)
    for name, least in (("sdf_seed", 60), ("sdf_contrast", 40)):
        docs = load_documents(spec.folder / f"{name}.jsonl")
        assert len(docs) >= least
        assert all(150 <= len(d.text.split()) <= 500 for d in docs)
        assert {d.type for d in docs} <= set(recipe.document_types) and {d.topic for d in docs} <= set(recipe.topics)


def test_sdf_without_a_recipe_and_bad_documents_are_clear_errors(tiny_model, tmp_path):
    with pytest.raises(UserError, match=r"trait 'sycophancy' has no SDF recipe"):
        run(tiny_config(tiny_model, trait="sycophancy", method="sdf"), tmp_path / "run")
    bad = tmp_path / "docs.jsonl"
    bad.write_text('{"text": "fine"}\n{"title": "no text"}\n')
    with pytest.raises(UserError, match=r"docs.jsonl:2: not a document \(text: Field required\)"):
        load_documents(bad)
