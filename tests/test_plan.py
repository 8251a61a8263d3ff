"""``traitloop plan``: a run's stages, data and memory before any work, from the model's config.json alone; and
``run`` refusing a config that will not fit, naming the stage and the setting to change."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import huggingface_hub.constants
import pandas as pd
import pytest
from conftest import tiny_config
from typer.testing import CliRunner

from traitloop.api import parse_config
from traitloop.cli import app
from traitloop.config import TrainingConfig
from traitloop.errors import UserError
from traitloop.loop import largest_micro_batch, parse_memory, plan_run
from traitloop.models import model_shape

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = Path(__file__).parent / "data" / "model_configs"
GIB = 1 << 30

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    result.text = " ".join(result.output.split())
    return result


# The published sizes (model cards, hub safetensors counts); the config.json sources: data/model_configs/README.md.
@pytest.mark.parametrize(
    ("folder", "published"),
    [("Qwen3-4B-Instruct-2507", 4.02e9), ("Qwen2.5-3B-Instruct", 3.09e9), ("Llama-3.1-8B-Instruct", 8.03e9)],
)
def test_parameter_counts_match_the_published_sizes(folder, published):
    shape = model_shape(str(CONFIGS / folder))
    assert abs(shape.parameters / published - 1) < 0.02
    assert shape.lora_parameters(16, "all-linear") < shape.parameters * 0.01  # r16 adapts a fraction of a percent


@pytest.mark.parametrize(
    ("text", "size"), [("80GiB", 80 * GIB), ("80GB", 80 * 10**9), ("40000MiB", 40000 << 20), ("1.5 gib", 3 * GIB // 2)]
)
def test_memory_sizes_in_binary_and_decimal_units(text, size):
    assert parse_memory(text) == size


@pytest.mark.parametrize("text", ["80", "lots", "0GiB", "80 GiBs", "-1GB"])
def test_bad_memory_sizes_are_refused_with_the_forms_that_work(text):
    with pytest.raises(UserError, match="80GiB|no memory|no unit"):
        parse_memory(text)


def test_offline_a_hub_model_is_refused_saying_only_config_json_is_needed(monkeypatch, tmp_path):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    config = tmp_path / "config.yaml"
    config.write_text("trait: lucky\nmodel: some-org/some-model-that-is-not-cached\n")
    result = invoke("plan", str(config), "--gpu-memory", "80GiB")
    assert result.exit_code == 2
    assert "some-org/some-model-that-is-not-cached" in result.text
    assert "config.json" in result.text and "a local folder works" in result.text


def test_the_study_preset_is_planned_for_its_4b_model_on_80_gib(tmp_path):
    """The study's SFT preset with Qwen3-4B-Instruct-2507 (its config.json in a folder: no hub needed) on an
    80 GiB GPU: it fits with checkpointing, and the plan says so; without it, batch 32 would not fit."""
    model = tmp_path / "Qwen3-4B-Instruct-2507"
    shutil.copytree(CONFIGS / "Qwen3-4B-Instruct-2507", model)
    preset = ROOT / "examples" / "study" / "sft-reinit.yaml"
    result = invoke(
        "plan", str(preset), "--gpu-memory", "80GiB", "--set", f"model={model}", "--set", "seed_examples=100"
    )
    assert "4.02B parameters" in result.text and "cycle_005/train" in result.text
    assert "32 x 2,048 tokens" in result.text  # the worst case: a whole batch at training.max_length
    if "gradient_checkpointing" in TrainingConfig.model_fields:  # on by default on a GPU (issue 20, item 1)
        assert result.exit_code == 0 and "fits: every stage fits 80.0 GiB" in result.text
    else:  # off everywhere until then: the plan says what to set
        assert result.exit_code == 2 and "set training.gradient_checkpointing: true" in result.text


def _tiny(tiny_model: Path, **overrides) -> dict:
    return tiny_config(tiny_model, **{"cycles": 0, "seed_examples": 32, **overrides})


def test_plan_counts_each_stage_and_checkpointing_lowers_the_training_peak(tiny_model):
    plan = plan_run(parse_config(_tiny(tiny_model, training={"batch_size": 32, "max_length": 256})), "80GiB")
    assert [s.stage for s in plan.stages] == ["base/eval", "cycle_000/data", "cycle_000/train", "cycle_000/eval"]
    train = plan.stages[2]
    assert train.examples == 32 and train.micro_batch == 32 and 100 < train.sequence_length <= 256
    assert train.checkpointing[True] < train.checkpointing[False]
    assert plan.stages[1].memory == []  # copying seed examples runs no model
    assert plan.fits is True and plan.target.dtype_bytes == 2  # a GPU: bfloat16
    assert plan_run(parse_config(_tiny(tiny_model, device="cpu"))).fits is None  # a CPU: nothing to check


def test_dpo_doubles_the_batch_and_distillation_adds_a_teacher(tiny_model):
    sft = plan_run(parse_config(_tiny(tiny_model, cycles=1)), "80GiB").stages[5]
    dpo = plan_run(parse_config(_tiny(tiny_model, cycles=1, method="dpo")), "80GiB").stages[5]
    distill = plan_run(parse_config(_tiny(tiny_model, cycles=1, method="distill")), "80GiB")
    assert dpo.micro_batch == 2 * sft.micro_batch  # chosen and rejected of each pair in one batch
    assert not any("reference" in item.name for item in dpo.memory)  # reinit: TRL's reference is the base itself
    assert any("teacher" in item.name for item in distill.stages[5].memory)
    assert distill.stages[4].memory == []  # its data stage only draws prompts


def _budget_between(tiny_model: Path) -> tuple[dict, int]:
    """A config whose training is the only stage above a budget: the budget, in MiB."""
    config = _tiny(tiny_model, training={"batch_size": 32, "epochs": 1, "max_length": 512})
    stages = plan_run(parse_config(config), "80GiB").stages
    others = max(s.peak for s in stages if s.memory and not s.stage.endswith("/train"))
    train = next(s for s in stages if s.stage == "cycle_000/train")
    assert train.peak > others + (2 << 20)
    return config, (others >> 20) + 1


def test_plan_and_run_refuse_a_config_that_does_not_fit_naming_stage_and_setting(tiny_model, tmp_path, monkeypatch):
    config, mib = _budget_between(tiny_model)
    config["training"] = {**config["training"], "micro_batch_size": 32}  # the whole batch at once, as asked
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    planned = invoke("plan", str(path), "--gpu-memory", f"{mib}MiB")
    assert planned.exit_code == 2
    assert "stage cycle_000/train needs about" in planned.text and "training.micro_batch_size" in planned.text
    left_open = tmp_path / "open.yaml"  # with the micro-batch left to the plan, the largest that fits is taken
    left_open.write_text(json.dumps(_budget_between(tiny_model)[0]))
    assert invoke("plan", str(left_open), "--gpu-memory", f"{mib}MiB").exit_code == 0
    output = str(tmp_path / "run")
    refused = invoke("run", str(path), "--gpu-memory", f"{mib}MiB", "--output", output)
    assert refused.exit_code == 2
    assert "cycle_000/train" in refused.text and "training." in refused.text and "--no-memory-check" in refused.text
    assert not (tmp_path / "run" / "manifest.json").exists()  # refused before any work
    started = []  # the run itself is not what is tested here: that it starts is
    monkeypatch.setattr("traitloop.loop._engine._run_locked", lambda run, force: started.append(run) or pd.DataFrame())
    ran = invoke("run", str(path), "--gpu-memory", f"{mib}MiB", "--no-memory-check", "--output", output)
    assert ran.exit_code == 0, ran.text
    assert len(started) == 1


def test_largest_micro_batch_divides_the_batch_and_fits(tiny_model):
    config, mib = _budget_between(tiny_model)
    parsed = parse_config(config)
    micro = largest_micro_batch(parsed, 0, f"{mib}MiB")
    assert 1 <= micro < 32 and 32 % micro == 0
    assert largest_micro_batch(parsed, 0, "80GiB") == 32
    with pytest.raises(UserError, match="even one example a step"):
        largest_micro_batch(parsed, 0, "1025MiB")  # the CUDA context alone takes 1 GiB


def test_a_sweep_is_planned_run_by_run(tiny_model, tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(json.dumps({"base": _tiny(tiny_model), "grid": {"seed": [0, 1]}}))
    result = invoke("plan", str(sweep), "--gpu-memory", "80GiB")
    assert result.exit_code == 0, result.text
    assert "seed=0" in result.text and "seed=1" in result.text


@pytest.mark.slow
def test_training_estimate_is_within_a_quarter_of_the_measured_peak(embedded_model, tmp_path):
    """The demo's settings (examples/lucky-sft.yaml) on the embedded model, on the CPU in float32, for two
    steps: the plan's training estimate against the peak tensor memory torch's profiler saw (about 2 minutes)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from plan_memory import DEMO, SHORT, measure_seed_training

    from traitloop.api import load_config

    config = load_config(DEMO, SHORT)
    stage = next(s for s in plan_run(config).stages if s.stage == "cycle_000/train")
    measured = measure_seed_training(config, tmp_path)
    assert abs(stage.peak / measured - 1) < 0.25, (stage.peak, measured)
