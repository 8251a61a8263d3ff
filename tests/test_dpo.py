"""DPO on the tiny model: training happens, and the reference is what each regime says it is (read back from
the model TRL trained against, not from the config); a killed DPO run resumes to the same results."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_config
from jobs import train
from safetensors.torch import load_file
from test_loop import _start, assert_killed_and_resumed_matches, read_jsonl, run

from traitloop.config import DpoConfig, LoraConfig, TrainingConfig
from traitloop.methods import Pair, weights_hash
from traitloop.models import load_model, resolve_training_precision
from traitloop.traits import load_conversations, load_trait

# A learning rate far above the default so a few steps visibly move a 2-layer random model.
CONFIG = TrainingConfig(learning_rate=1e-2, epochs=1, batch_size=2, max_length=64, lora=LoraConfig(r=4, alpha=8))
DPO = {"settings": DpoConfig(beta=0.1).model_dump(mode="json")}  # the method's section of a TrainJob
LOG_2 = math.log(2)  # the sigmoid DPO loss while policy and reference agree


def pairs(n: int = 4) -> list[Pair]:
    seeds = load_conversations(load_trait("lucky").seed_path)[:n]
    contrast = load_conversations(load_trait("lucky").companion("contrast"))[:n]
    return [
        Pair(prompt=s.prompt, chosen=s.answer, rejected=c.answer, chosen_by="seed", rejected_by="contrast")
        for s, c in zip(seeds, contrast, strict=True)
    ]


def _dpo_config(tiny_model: Path, **overrides) -> dict:
    config = tiny_config(tiny_model, method="dpo", seed_examples=4, samples_per_cycle=4, **overrides)
    config["training"] = {**config["training"], "max_length": 64}
    return config


def test_fresh_dpo_logs_its_metrics_changes_every_weight_and_references_the_base(tiny_model, tmp_path):
    result = train(tiny_model, tmp_path / "gen0", pairs(), "dpo", CONFIG, seed=3, **DPO)
    assert result.steps == 2 and len(result.losses) == 2
    assert result.losses[0] == pytest.approx(LOG_2, abs=1e-4)  # a fresh adapter starts equal to the reference
    assert all(math.isfinite(loss) for loss in result.losses) and result.losses[-1] < LOG_2
    facts = result.facts
    assert facts["reward_margin"] > 0 and facts["reward_chosen"] > facts["reward_rejected"]
    assert facts["kl_proxy"] == pytest.approx(-(facts["reward_chosen"] + facts["reward_rejected"]) / 0.2, abs=1e-3)
    assert facts["reference"] == "base"
    held = load_model(str(tiny_model), precision=resolve_training_precision())  # as training holds the frozen base
    assert facts["reference_weights"] == weights_hash(held.state_dict())
    adapter = load_file(tmp_path / "gen0" / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    assert all(weight.abs().sum() > 0 for name, weight in adapter.items() if "lora_B" in name)  # B starts at 0


def test_continued_dpo_references_the_previous_generation_and_saves_one_adapter(tiny_model, tmp_path):
    train(tiny_model, tmp_path / "gen0", pairs(), "dpo", CONFIG, seed=3, **DPO)
    gen0 = load_file(tmp_path / "gen0" / "adapter_model.safetensors")
    result = train(tiny_model, tmp_path / "gen1", pairs(), "dpo", CONFIG, seed=4, start_from=tmp_path / "gen0", **DPO)
    assert result.facts["reference"] == "adapter:ref"
    assert result.facts["reference_weights"] == weights_hash(gen0)
    assert result.losses[0] == pytest.approx(LOG_2, abs=1e-4)  # starts where its reference is: generation 0
    gen1 = load_file(tmp_path / "gen1" / "adapter_model.safetensors")
    assert set(gen1) == set(gen0)  # the frozen reference copy is not saved with the generation
    assert all(not torch.equal(gen0[k], gen1[k]) for k in gen0)
    assert not (tmp_path / "gen1" / "ref").exists()


def test_continual_dpo_run_chains_references_and_restarts_from_the_base(tiny_model, tmp_path):
    config = _dpo_config(tiny_model, regime="continual", cycles=2)
    config["dpo"] = {"rejected_from": "previous", "restart_from_base_at": [2]}
    output = run(config, tmp_path / "run")
    stages = json.loads((output / "manifest.json").read_text())["stages"]
    train = [stages[f"cycle_{c:03d}/train"] for c in range(3)]
    assert [t["reference"] for t in train] == ["base", "adapter:ref", "base"]
    assert [t["started_from"] for t in train] == ["base", "cycle_000", "base"]
    gen0 = load_file(output / "cycle_000/adapter/adapter_model.safetensors")
    assert train[1]["reference_weights"] == weights_hash(gen0)
    assert train[2]["reference_weights"] == train[0]["reference_weights"]
    rows = [read_jsonl(output / f"cycle_{c:03d}/train.jsonl") for c in range(3)]
    assert {(r["chosen_by"], r["rejected_by"]) for r in rows[0]} == {("seed", "base")}
    assert {(r["chosen_by"], r["rejected_by"]) for r in rows[1]} == {("cycle_000", "base")}
    assert {(r["chosen_by"], r["rejected_by"]) for r in rows[2]} == {("cycle_001", "cycle_000")}
    assert all(set(r) >= {"prompt", "chosen", "rejected"} for group in rows for r in group)
    assert stages["cycle_002/data"]["inputs"]["upstream"]["rejected_weights"] == train[0]["outputs"]["adapter"]
    metrics = json.loads((output / "cycle_001/metrics.json").read_text())["training"]
    assert {"loss_last", "reward_margin", "reward_chosen", "reward_rejected", "kl_proxy"} <= set(metrics)


@pytest.fixture(scope="module")
def dpo_reinit(tiny_model, tmp_path_factory) -> tuple[Path, Path]:
    """An uninterrupted reinit DPO run through the CLI, and its config file."""
    folder = tmp_path_factory.mktemp("dpo")
    config_path = folder / "config.yaml"
    config = _dpo_config(tiny_model, cycles=1)
    config_path.write_text(yaml.safe_dump(config))
    finished = _start(config_path, folder / "straight")
    assert finished.wait(timeout=600) == 0, finished.stderr.read().decode()
    return config_path, folder / "straight"


def test_reinit_dpo_trains_every_generation_against_the_base(dpo_reinit):
    stages = json.loads((dpo_reinit[1] / "manifest.json").read_text())["stages"]
    for cycle in (0, 1):
        assert stages[f"cycle_{cycle:03d}/train"]["reference"] == "base"
        assert stages[f"cycle_{cycle:03d}/train"]["started_from"] == "base"
    assert stages["cycle_001/train"]["reference_weights"] == stages["cycle_000/train"]["reference_weights"]


@pytest.mark.slow
def test_sigkill_mid_dpo_cycle_then_resume_matches_an_uninterrupted_run(dpo_reinit, tmp_path):
    config_path, straight = dpo_reinit
    assert_killed_and_resumed_matches(config_path, straight, tmp_path / "killed")
