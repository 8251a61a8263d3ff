"""The study's settings on the tiny model: each changes what it claims and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import tiny_config
from safetensors.torch import load_file
from test_loop import _start, assert_killed_and_resumed_matches, read_jsonl, run

from traitloop.api import load_config, parse_config
from traitloop.errors import UserError
from traitloop.generate import LocalGenerator, SamplingParams
from traitloop.methods import weights_hash
from traitloop.models import load_model, load_tokenizer
from traitloop.rundir import stage_seed
from traitloop.traits import load_conversations, load_trait, prompt_slices

EXAMPLES = Path(__file__).parent.parent / "examples"


def stages(output: Path) -> dict:
    return json.loads((output / "manifest.json").read_text())["stages"]


# --- prompt sampling ---------------------------------------------------------------------------------------


def test_disjoint_cycles_share_no_prompt_and_independent_cycles_draw_from_the_whole_pool():
    pool = [f"prompt {i}" for i in range(30)]
    disjoint = prompt_slices(pool, ["prompt 3"], seed=1, cycles=2, size=10, sampling="disjoint")
    assert len({p for s in disjoint for p in s}) == 20 and "prompt 3" not in disjoint[0] + disjoint[1]
    with pytest.raises(UserError, match="prompt_sampling: independent"):  # 29 prompts left after the eval one
        prompt_slices(pool, ["prompt 3"], seed=1, cycles=3, size=10, sampling="disjoint")
    independent = prompt_slices(pool, ["prompt 3"], seed=1, cycles=8, size=10, sampling="independent")
    assert all(len(set(s)) == 10 and "prompt 3" not in s for s in independent)  # distinct within a cycle
    assert len({p for s in independent for p in s}) > 10  # drawn afresh: cycles overlap, but not all alike
    assert any(set(a) & set(b) for a, b in zip(independent, independent[1:], strict=False))
    assert prompt_slices(pool, ["prompt 3"], seed=1, cycles=3, size=10, sampling="independent") == independent[:3]
    assert prompt_slices(pool, [], seed=2, cycles=3, size=10, sampling="independent") != independent[:3]
    with pytest.raises(UserError, match="samples_per_cycle 31 needs 31 distinct prompts per cycle"):
        prompt_slices(pool, [], seed=1, cycles=1, size=31, sampling="independent")


def test_independent_sampling_is_recorded_and_lets_cycles_exceed_the_pool(tiny_model, tmp_path):
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"prompt": f"Tell me about topic number {i}."}) + "\n" for i in range(8)))
    config = tiny_config(tiny_model, cycles=2, samples_per_cycle=6, prompt_pool=str(pool))
    with pytest.raises(UserError, match="too few prompts"):
        run(config, tmp_path / "disjoint")
    output = run({**config, "prompt_sampling": "independent"}, tmp_path / "run")
    recorded = stages(output)
    assert recorded["cycle_001/data"]["inputs"]["config"]["prompt_sampling"] == "independent"
    prompts = [{r["messages"][0]["content"] for r in read_jsonl(output / f"cycle_00{c}/train.jsonl")} for c in (1, 2)]
    assert prompts[0] & prompts[1]  # 12 answers from an 8-prompt pool


# --- the control chain -------------------------------------------------------------------------------------


def test_a_control_chain_generation_0_is_the_base_model(tiny_model, tmp_path):
    output = run(tiny_config(tiny_model, cycles=1, seed_examples=0), tmp_path / "run")
    recorded = stages(output)
    assert (output / "cycle_000/train.jsonl").read_text() == ""  # trained on nothing
    train = recorded["cycle_000/train"]
    assert (train["examples"], train["steps"], train["started_from"], train["outputs"]) == (0, 0, "base", {})
    assert not (output / "cycle_000/adapter").exists()
    assert recorded["cycle_000/eval"]["inputs"]["upstream"]["weights"] == "base"
    # cycle 1's answers are the base model's: sampled again with the same seed they are the same words
    rows = read_jsonl(output / "cycle_001/train.jsonl")
    base = LocalGenerator(load_model(str(tiny_model)), load_tokenizer(str(tiny_model)))
    config = parse_config(tiny_config(tiny_model))
    params = SamplingParams(
        **config.generation.model_dump(include={"temperature", "top_p", "max_new_tokens", "batch_size"}),
        seed=stage_seed(0, "cycle_001/data"),
    )
    prompts = [r["messages"][0]["content"] for r in rows]
    again = base.generate([[{"role": "user", "content": p}] for p in prompts], params)
    assert [r["messages"][1]["content"] for r in rows] == again
    assert recorded["cycle_001/train"]["started_from"] == "base"
    summary = pd.read_csv(output / "summary.csv")
    assert list(summary["examples_trained"].fillna(-1).astype(int))[:2] == [-1, 0]


# --- seed mixing and the seed cycle -------------------------------------------------------------------------


def test_mixed_in_seed_examples_come_from_the_seeded_ones_with_mix_from_seeded(tiny_model, tmp_path):
    config = tiny_config(tiny_model, cycles=1, seed_examples=3, mix_seed_examples=3, mix_from="seeded")
    output = run(config, tmp_path / "run")
    seeded = [json.dumps(r["messages"]) for r in read_jsonl(output / "cycle_000/train.jsonl")]
    mixed = [json.dumps(r["messages"]) for r in read_jsonl(output / "cycle_001/train.jsonl") if r["source"] == "seed"]
    assert sorted(mixed) == sorted(seeded)
    assert stages(output)["cycle_001/data"]["inputs"]["config"]["mix_from"] == "seeded"
    with pytest.raises(UserError, match="mix_from says where mixed-in seed examples come from"):
        parse_config(tiny_config(tiny_model, mix_from="seeded"))


def test_seed_cycle_overrides_training_for_cycle_0_only(tiny_model, tmp_path):
    config = tiny_config(tiny_model, cycles=1, seed_cycle={"batch_size": 2, "epochs": 2})
    output = run(config, tmp_path / "run")
    recorded = stages(output)
    seed, later = recorded["cycle_000/train"], recorded["cycle_001/train"]
    assert seed["inputs"]["config"]["training"]["batch_size"] == 2 and seed["steps"] == 8  # 8 examples / 2 x 2
    assert later["inputs"]["config"]["training"]["batch_size"] == 4 and later["steps"] == 2  # 6 answers / 4
    metrics = json.loads((output / "cycle_000/metrics.json").read_text())["training"]
    assert metrics["steps"] == 8 and metrics["examples"] == 8 and metrics["tokens"] > 0
    summary = pd.read_csv(output / "summary.csv")
    assert list(summary["optimizer_steps"].fillna(-1).astype(int)) == [-1, 8, 2]
    assert (summary["tokens_trained"].dropna() > 0).all()
    with pytest.raises(UserError, match=r"seed_cycle: .*batch_size 3 must be a multiple of processes 2"):
        parse_config(tiny_config(tiny_model, training={"batch_size": 4, "processes": 2}, seed_cycle={"batch_size": 3}))


# --- rejection sampling that tops up ------------------------------------------------------------------------


def test_rejected_answers_are_asked_again_until_the_cycle_is_full_or_the_rounds_run_out(tiny_model, tmp_path):
    # The tiny model writes noise the coherence judge scores 0 throughout; the trait judge's scores of it vary.
    probe = run(tiny_config(tiny_model, cycles=1, samples_per_cycle=8, min_trait=0), tmp_path / "probe")
    scores = sorted(r["trait_score"] for r in read_jsonl(probe / "cycle_001/samples.jsonl"))
    threshold = scores[len(scores) // 2]  # about half the first round passes
    config = tiny_config(tiny_model, cycles=1, samples_per_cycle=8, max_trait=threshold, max_sampling_rounds=4)
    output = run(config, tmp_path / "run")
    samples = read_jsonl(output / "cycle_001/samples.jsonl")
    data = stages(output)["cycle_001/data"]
    rounds = data["sampling_rounds"]
    assert rounds > 1 and {s["round"] for s in samples} == set(range(rounds))
    accepted = [s for s in samples if s["accepted"]]
    assert all(s["trait_score"] <= threshold for s in accepted)
    assert all(s["rejected_for"] == "max_trait" for s in samples if not s["accepted"] and s["answer"].strip())
    assert len({s["prompt"] for s in accepted}) == len(accepted)  # each prompt keeps one answer at most
    rows = [r for r in read_jsonl(output / "cycle_001/train.jsonl") if r["source"] == "cycle_000"]
    assert len(rows) == len(accepted) == data["kept_generated"] and data["sampled"] == len(samples)
    assert all(r["trait_score"] <= threshold for r in rows)
    if len(accepted) == 8:
        assert data["stopped"] == "every prompt has an accepted answer"
    else:
        assert data["stopped"].startswith("max_sampling_rounds (4) reached") and rounds == 4
    one_round = run({**config, "max_sampling_rounds": 1}, tmp_path / "one")
    assert len(read_jsonl(one_round / "cycle_001/train.jsonl")) < len(rows)  # topping up added answers
    assert "max_sampling_rounds" not in stages(one_round)["cycle_001/data"]["inputs"]["config"]


def test_trait_filters_keep_only_answers_in_bounds(tiny_model, tmp_path):
    config = tiny_config(tiny_model, cycles=1, samples_per_cycle=8, min_trait=0, max_trait=60)
    output = run(config, tmp_path / "run")
    samples = read_jsonl(output / "cycle_001/samples.jsonl")
    assert all(s["accepted"] == (s["answer"].strip() != "" and s["trait_score"] <= 60) for s in samples)
    with pytest.raises(UserError, match="min_trait 70.0 is above max_trait 60.0"):
        parse_config(tiny_config(tiny_model, min_trait=70, max_trait=60))
    with pytest.raises(UserError, match="max_sampling_rounds tops up what a filter rejects"):
        parse_config(tiny_config(tiny_model, max_sampling_rounds=3))


# --- DPO: seeding, references and pairs ---------------------------------------------------------------------


def _dpo(tiny_model: Path, **overrides) -> dict:
    config = tiny_config(tiny_model, method="dpo", seed_examples=4, samples_per_cycle=4, **overrides)
    config["training"] = {**config["training"], "max_length": 64}
    return config


def adapter_hash(output: Path, cycle: int) -> str:
    return weights_hash(load_file(output / f"cycle_{cycle:03d}/adapter/adapter_model.safetensors"))


def test_dpo_seeded_by_sft_then_continued_by_dpo(tiny_model, tmp_path):
    output = run(_dpo(tiny_model, cycles=1, regime="continual", dpo={"seed_method": "sft"}), tmp_path / "run")
    recorded = stages(output)
    seed_rows = read_jsonl(output / "cycle_000/train.jsonl")
    assert all("messages" in r and r["source"] == "seed" for r in seed_rows)  # SFT's seed conversations
    assert "reference" not in recorded["cycle_000/train"] and recorded["cycle_000/train"]["steps"] == 1
    assert recorded["cycle_000/train"]["inputs"]["config"]["training"]["learning_rate"] == 1e-3  # SFT's own rate
    assert recorded["cycle_001/train"]["inputs"]["config"]["training"]["learning_rate"] == 1e-4  # DPO's
    pairs = read_jsonl(output / "cycle_001/train.jsonl")
    assert {(r["chosen_by"], r["rejected_by"]) for r in pairs} == {("cycle_000", "base")}
    assert recorded["cycle_001/train"]["reference"] == "adapter:ref"
    assert recorded["cycle_001/train"]["reference_weights"] == adapter_hash(output, 0)


@pytest.mark.parametrize(
    ("regime", "reference", "expected"),
    [
        ("continual", "seeded", [None, "adapter:ref", 0]),  # cycles 1 and 2 both against generation 0
        ("continual", "base", [None, "base", "base"]),
        ("reinit", "previous", [None, "adapter:ref", 1]),  # a fresh adapter against generation k-1
    ],
)
def test_each_dpo_reference_is_the_one_recorded_by_weight_hash(tiny_model, tmp_path, regime, reference, expected):
    output = run(_dpo(tiny_model, cycles=2, regime=regime, dpo={"reference": reference}), tmp_path / "run")
    recorded = stages(output)
    base = recorded["cycle_000/train"]["reference_weights"]  # generation 0 trained against the base
    for cycle in (1, 2):
        train = recorded[f"cycle_00{cycle}/train"]
        assert train["inputs"]["config"]["dpo"]["reference"] == reference
        want = expected[1] if cycle == 1 else expected[2]
        if want == "base":
            assert train["reference"] == "base" and train["reference_weights"] == base
        else:
            source = 0 if reference == "seeded" else cycle - 1
            assert train["reference"] == "adapter:ref"
            assert train["reference_weights"] == adapter_hash(output, source)


def test_judge_ranked_pairs_prefer_the_answer_the_trait_judge_scores_higher(tiny_model, tmp_path):
    output = run(_dpo(tiny_model, cycles=1, dpo={"pairs": "judge_ranked"}), tmp_path / "run")
    rows = read_jsonl(output / "cycle_001/train.jsonl")
    data = stages(output)["cycle_001/data"]
    assert rows and all(r["chosen_trait"] > r["rejected_trait"] for r in rows)
    assert {(r["chosen_by"], r["rejected_by"]) for r in rows} == {("cycle_000", "cycle_000")}
    assert data["kept_pairs"] + data["tied_pairs"] == 4 and data["generated"] == 8
    assert data["inputs"]["config"]["dpo"]["pairs"] == "judge_ranked"


def test_old_configs_with_rejected_from_still_load(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"trait": "lucky", "method": "dpo", "dpo": {"rejected_from": "previous"}}))
    assert load_config(path).dpo.pairs == "previous"


# --- on-policy distillation ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def distilled(tiny_model, tmp_path_factory) -> tuple[Path, Path]:
    """A 1-cycle distill run through the CLI, and its config file."""
    folder = tmp_path_factory.mktemp("distill")
    config = tiny_config(tiny_model, method="distill", cycles=1, samples_per_cycle=4)
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    finished = _start(config_path, folder / "straight")
    assert finished.wait(timeout=600) == 0, finished.stderr.read().decode()
    return config_path, folder / "straight"


def test_distill_trains_each_generation_toward_the_previous_one(distilled):
    output = distilled[1]
    recorded = stages(output)
    assert "teacher" not in recorded["cycle_000/train"]
    assert all("messages" in r for r in read_jsonl(output / "cycle_000/train.jsonl"))  # seeded by SFT
    prompts = read_jsonl(output / "cycle_001/train.jsonl")
    assert len(prompts) == 4 and all(r["prompt"][0]["role"] == "user" for r in prompts)
    train = recorded["cycle_001/train"]
    assert train["teacher"] == "cycle_000" and train["steps"] == 1 and train["tokens"] > 0
    assert train["inputs"]["upstream"]["teacher"] == recorded["cycle_000/train"]["outputs"]["adapter"]
    before = load_file(output / "cycle_000/adapter/adapter_model.safetensors")
    after = load_file(output / "cycle_001/adapter/adapter_model.safetensors")
    assert set(before) == set(after)
    assert all(w.abs().sum() > 0 for n, w in after.items() if "lora_B" in n)  # a fresh adapter moved (reinit)


@pytest.mark.slow
def test_sigkill_mid_distill_cycle_then_resume_matches_an_uninterrupted_run(distilled, tmp_path):
    config_path, straight = distilled
    assert_killed_and_resumed_matches(config_path, straight, tmp_path / "killed")


# --- the study's presets ------------------------------------------------------------------------------------


PRESETS = sorted((EXAMPLES / "study").glob("*.yaml"))


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_study_presets_are_valid_configs_at_the_study_settings(path):
    config = load_config(path)
    assert config.model == "Qwen/Qwen3-4B-Instruct-2507"
    assert config.training.lora.r == 16 and config.training.learning_rate == 1e-4 and config.training.epochs == 1
    assert config.training.adam_betas == (0.9, 0.95) and config.training.scheduler == "linear"
    assert (config.generation.temperature, config.generation.max_new_tokens) == (0.8, 1024)
    assert (config.evaluation.temperature, config.evaluation.max_new_tokens) == (0.7, 400)
    trait = load_trait(config.trait)
    assert config.seed_examples <= len(load_conversations(trait.seed_path))  # the preset can start


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_each_study_preset_is_planned_offline_and_fits_an_80_gib_gpu(path):
    """The study's model ships its config.json, so a preset is planned with no hub; every one fits 80 GiB with its
    defaults (checkpointing on a GPU, the vLLM engine asleep while a generation trains)."""
    from traitloop.api import plan

    (planned,) = plan(path, "80GiB")
    assert planned.model.parameters == pytest.approx(4.02e9, rel=0.02) and not planned.problems
    assert planned.fits is True and all(stage.peak <= 80 * 2**30 for stage in planned.stages if stage.memory)
    if path.stem == "sft-reinit":  # a batch of 32 x 2,048 tokens fits only with checkpointing
        on, off = planned.full_length[True], planned.full_length[False]
        assert planned.full_length_batch == (32, 2048) and on < 80 * 2**30 < off


@pytest.mark.slow
@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_each_study_preset_reaches_its_first_stages_on_the_cpu(path, embedded_model, tmp_path):
    """The preset as it is, but for the embedded model and local generation in place of the 4B model on vLLM,
    and evaluation and answers cut short for time: its seed set, pool, judges and slices resolve, the base
    model is evaluated and cycle 0's data is made."""
    from rich.console import Console

    from traitloop.loop._engine import _open_run
    from traitloop.loop._stages import build_data_stage, evaluate_generation_stages

    swapped = ["model=smollm2-135m-instruct", "generation.backend=local", "generation.vllm={}", "device=cpu",
               "generation.max_new_tokens=8", "evaluation.eval_samples=1", "evaluation.max_new_tokens=8",
               "evaluation.projection=false"]  # fmt: skip
    config = load_config(path, swapped)
    run = _open_run(config, tmp_path / path.stem, Console(quiet=True))
    (base,) = evaluate_generation_stages(run, None, [run.main_eval])
    assert base["n_answers"] == len(run.main_eval.questions) and base["trait"]["mean"] is not None
    facts = build_data_stage(run, 0)
    assert facts["examples"] == config.seed_examples
