"""Training one generation on two processes through ``accelerate launch`` (CPU processes over gloo here, GPUs
elsewhere): each process takes half of every batch, so the weights match one process at the same global batch."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_config
from safetensors.torch import load_file
from test_dpo import CONFIG as DPO_TRAINING
from test_dpo import DPO, pairs
from test_train import CONFIG, seeds

import traitloop
from traitloop.api import parse_config
from traitloop.errors import UserError
from traitloop.loop._inputs import _train_inputs
from traitloop.methods import TrainJob, train_job, train_launched
from traitloop.models import dtype_name, resolve_training_precision

pytestmark = pytest.mark.slow  # several training processes each: minutes together


def write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def job(method: str, model, data, output_dir, training, dtype: str = "float32", **fields) -> TrainJob:
    """A job in float32 unless asked: there, two processes and one agree to 3e-8. In bfloat16 (``auto`` on a
    CPU that computes it) the split batch rounds differently, by 1e-3 here, about one step's update at lr 1e-3,
    so the weights cannot show whether the split is right."""
    fields |= {"training": training, "seed": 3, "dtype": dtype}
    return TrainJob(method=method, base=str(model), data=data, output_dir=output_dir, **fields)


def assert_same_weights(a_dir, b_dir) -> None:
    a, b = (load_file(d / "adapter_model.safetensors") for d in (a_dir, b_dir))
    assert set(a) == set(b) and a
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4, msg=name)
    assert all(w.abs().sum() > 0 for n, w in a.items() if "lora_B" in n)  # trained: B starts at zero


def test_sft_on_two_processes_trains_the_same_weights_as_one(tiny_model, tmp_path):
    data = tmp_path / "train.jsonl"
    write_jsonl(data, [c.model_dump() for c in seeds(8)])
    steps: list[tuple[int, int]] = []
    two = CONFIG.model_copy(update={"processes": 2})
    launched = train_launched(
        job("sft", tiny_model, data, tmp_path / "two", two), 2, on_step=lambda step, total: steps.append((step, total))
    )
    alone = train_job(job("sft", tiny_model, data, tmp_path / "one", CONFIG))
    assert steps == [(1, 2), (2, 2)]  # rank 0's progress reaches the caller
    assert (launched.examples, launched.steps) == (alone.examples, alone.steps) == (8, 2)
    assert launched.losses == pytest.approx(alone.losses, abs=1e-4)
    assert_same_weights(tmp_path / "two", tmp_path / "one")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "train.jsonl", "two", "two.launch.log"]


def test_dpo_on_two_processes_trains_the_same_weights_as_one(tiny_model, tmp_path):
    data = tmp_path / "train.jsonl"
    write_jsonl(data, [p.model_dump() for p in pairs(4)])
    two = DPO_TRAINING.model_copy(update={"processes": 2})
    launched = train_launched(job("dpo", tiny_model, data, tmp_path / "two", two, **DPO), 2)
    alone = train_job(job("dpo", tiny_model, data, tmp_path / "one", DPO_TRAINING, **DPO))
    assert launched.facts["reference"] == alone.facts["reference"] == "base"
    assert launched.facts["reward_margin"] == pytest.approx(alone.facts["reward_margin"], abs=1e-3)
    assert_same_weights(tmp_path / "two", tmp_path / "one")


def test_a_failed_launch_says_so_with_its_log(tmp_path):
    data = tmp_path / "train.jsonl"
    write_jsonl(data, [c.model_dump() for c in seeds(4)])
    two = CONFIG.model_copy(update={"processes": 2})
    expected = r"accelerate launch failed \(exit \d+\): \w*Error: .*no-such-model.*\n.*whole output: .*\.log"
    with pytest.raises(UserError, match=expected):
        train_launched(job("sft", tmp_path / "no-such-model", data, tmp_path / "two", two), 2)
    assert not (tmp_path / "two").exists()


def test_launched_processes_train_in_the_precision_one_process_resolves(tiny_model, tmp_path):
    data = tmp_path / "train.jsonl"
    write_jsonl(data, [c.model_dump() for c in seeds(4)])
    two = CONFIG.model_copy(update={"processes": 2})
    launched = train_launched(job("sft", tiny_model, data, tmp_path / "two", two, dtype="auto"), 2)
    assert launched.dtype == dtype_name(resolve_training_precision().dtype)


def test_a_run_with_two_training_processes_trains_generation_0_as_one_process_does(tiny_model, tmp_path):
    config = tiny_config(tiny_model, cycles=0, dtype="float32")  # float32: see ``job``
    alone = traitloop.run(parse_config(config), output=tmp_path / "alone")
    config["training"] = {**config["training"], "processes": 2}
    folder = traitloop.run(parse_config(config), output=tmp_path / "lucky")
    assert_same_weights(folder / "cycle_000" / "adapter", alone / "cycle_000" / "adapter")
    assert (folder / "cycle_000" / "train.launch.log").is_file()
    record = json.loads((folder / "manifest.json").read_text())["stages"]["cycle_000/train"]
    assert record["inputs"]["config"]["training"]["processes"] == 2 and record["steps"] == 2


def test_processes_enter_the_train_stage_inputs_only_above_one(tiny_model, tmp_path):
    """Runs made before ``training.processes`` existed keep their finished train stages."""

    def training_inputs(**training):
        config = parse_config(tiny_config(tiny_model, training={"batch_size": 4, **training}))
        method = SimpleNamespace(train_inputs=lambda run, cycle: {})
        run = SimpleNamespace(config=config, method_for=lambda cycle: method, template_options={})
        return _train_inputs(run, 0)["training"]

    assert "processes" not in training_inputs()
    assert training_inputs(processes=2)["processes"] == 2
