"""Device and dtype: resolved from the config, models placed there, recorded per stage, compared on resume.

This machine has no GPU: the CUDA branches of the resolution are exercised with torch.cuda's answers
patched, the placement with cpu and bfloat16, and a run "made on a GPU" by editing its manifest.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from rich.console import Console

import traitloop
from traitloop.api import parse_config
from traitloop.errors import UserError
from traitloop.generate import LocalGenerator, SamplingParams
from traitloop.generate._packed import packing_available
from traitloop.judge import NllScorer
from traitloop.methods import TrainJob
from traitloop.methods._train import trainer_arguments
from traitloop.models import (
    CPU_FLOAT32,
    dtype_name,
    load_model,
    load_tokenizer,
    resolve_device,
    resolve_precision,
    resolve_training_precision,
)

SRC = Path(__file__).parent.parent / "src" / "traitloop"


@pytest.fixture
def a_gpu(monkeypatch):
    """torch.cuda answering as on a machine with a GPU (bfloat16 support switchable)."""
    support = {"bf16": True}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: support["bf16"])
    return support


@pytest.fixture
def native_bf16(monkeypatch):
    """The CPU's bfloat16 support as oneDNN reports it, switchable (on by default)."""
    support = {"native": True}
    monkeypatch.setattr("traitloop.models._device.cpu_computes_bfloat16", lambda: support["native"])
    return support


def test_auto_is_the_cpu_in_float32_here():
    precision = resolve_precision()
    assert precision.device == torch.device("cpu") and precision.dtype == torch.float32
    assert precision.facts == {"device": "cpu", "dtype": "float32"}
    assert resolve_precision("cpu", "bfloat16").facts == {"device": "cpu", "dtype": "bfloat16"}


def test_auto_on_a_gpu_is_cuda_in_bfloat16_where_supported(a_gpu):
    assert resolve_precision().facts == {"device": "cuda", "dtype": "bfloat16"}
    assert resolve_precision("cuda", "float32").facts == {"device": "cuda", "dtype": "float32"}
    assert resolve_precision("cpu").facts == {"device": "cpu", "dtype": "float32"}  # the CPU stays fp32
    a_gpu["bf16"] = False  # e.g. a V100 or T4
    assert resolve_precision().facts == {"device": "cuda", "dtype": "float32"}
    with pytest.raises(UserError, match="dtype is bfloat16, but this GPU does not support it"):
        resolve_precision("cuda", "bfloat16")


def test_cuda_without_a_gpu_is_an_error_naming_the_field(tiny_model, tmp_path):
    with pytest.raises(UserError, match=r"device is cuda, but torch sees no CUDA GPU.*set device: auto or cpu"):
        resolve_device("cuda")
    with pytest.raises(UserError, match=r"device is cuda"):
        traitloop.run(parse_config(tiny_config(tiny_model, device="cuda")), output=tmp_path / "run")
    assert not (tmp_path / "run" / "manifest.json").exists()  # refused before any stage


def test_config_rejects_other_devices_and_dtypes():
    with pytest.raises(UserError, match=r"device: Input should be 'auto', 'cpu' or 'cuda'"):
        parse_config({"trait": "lucky", "device": "mps"})
    with pytest.raises(UserError, match=r"dtype: Input should be 'auto', 'float32' or 'bfloat16'"):
        parse_config({"trait": "lucky", "dtype": "float16"})


def test_trainer_arguments_follow_the_run_precision(a_gpu, tmp_path):
    config = parse_config({"trait": "lucky"}).training

    def placement(device: str, dtype: str = "auto") -> tuple[bool, bool]:
        job = TrainJob(method="sft", base="m", data=tmp_path, output_dir=tmp_path, training=config, seed=0,
                       device=device, dtype=dtype)  # fmt: skip
        arguments = trainer_arguments(job, tmp_path)
        return arguments["use_cpu"], arguments["bf16"]

    assert placement("auto") == (False, True)  # the GPU, bf16 autocast: nothing forces the CPU
    assert placement("cuda", "float32") == (False, False)
    assert placement("cpu", "float32") == (True, False)


def test_auto_trains_in_bfloat16_on_a_cpu_that_computes_it_natively(native_bf16, tmp_path):
    """Under dtype: auto a CPU generates in float32 but trains in bfloat16 where it has bfloat16 matrix units;
    without them, or with dtype: float32 named, it trains in float32."""
    config = parse_config({"trait": "lucky"}).training

    def trains_in(device: str = "auto", dtype: str = "auto") -> tuple[str, bool]:
        job = TrainJob(method="sft", base="m", data=tmp_path, output_dir=tmp_path, training=config, seed=0,
                       device=device, dtype=dtype)  # fmt: skip
        return dtype_name(resolve_training_precision(device, dtype).dtype), trainer_arguments(job, tmp_path)["bf16"]

    assert resolve_precision().facts == {"device": "cpu", "dtype": "float32"}  # generation stays float32
    assert trains_in() == trains_in("cpu") == ("bfloat16", True)
    assert trains_in("cpu", "float32") == ("float32", False)
    native_bf16["native"] = False  # e.g. an older x86 CPU: bfloat16 would be emulated, slower than float32
    assert trains_in() == ("float32", False)
    assert trains_in("cpu", "bfloat16") == ("bfloat16", True)  # named: as asked


def test_training_in_bfloat16_on_a_cpu_reaches_the_frozen_base_and_the_autocast(native_bf16, tiny_model, tmp_path):
    """The frozen base is held in bfloat16, the adapter in float32, and the trainer's forward computes the
    base layers in bfloat16 (autocast); every adapter weight still trains."""
    from jobs import job, train

    from traitloop.config import LoraConfig, TrainingConfig
    from traitloop.methods._train import trainable_model
    from traitloop.traits import load_conversations, load_trait

    config = TrainingConfig(epochs=1, batch_size=4, max_length=128, lora=LoraConfig(r=4, alpha=8))
    rows = load_conversations(load_trait("lucky").seed_path)[:4]
    model = trainable_model(job(tiny_model, tmp_path / "adapter", rows, "sft", config, seed=3))
    dtypes = {(p.requires_grad, p.dtype) for p in model.parameters()}
    assert dtypes == {(False, torch.bfloat16), (True, torch.float32)}

    seen: set[torch.dtype] = set()

    def record(module, args, output):
        if isinstance(module, torch.nn.Linear):
            seen.add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(record)  # every layer the trainer runs
    try:
        result = train(tiny_model, tmp_path / "trained", rows, "sft", config, seed=3)
    finally:
        handle.remove()
    # The adapter's own layers hold float32 weights: only autocast makes them compute in bfloat16.
    assert result.steps == 1 and seen == {torch.bfloat16}


def test_load_model_places_weights_in_the_dtype_and_on_the_device(tiny_model):
    model = load_model(str(tiny_model))
    assert {(p.device.type, p.dtype) for p in model.parameters()} == {("cpu", torch.float32)}
    model = load_model(str(tiny_model), precision=resolve_precision("cpu", "bfloat16"))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_packed_linears_apply_only_to_float32_on_cpu(tiny_model):
    model = load_model(str(tiny_model), precision=CPU_FLOAT32)
    assert packing_available(model) == torch.backends.mkldnn.is_available()
    assert not packing_available(load_model(str(tiny_model), precision=resolve_precision("cpu", "bfloat16")))
    assert not packing_available(model.to("meta"))  # any other device: the model's own layers


def test_sampling_and_likelihoods_run_in_bfloat16(tiny_model):
    """The dtype path a GPU takes by default, on the CPU: answers come back and likelihoods agree with fp32."""
    tokenizer = load_tokenizer(str(tiny_model))
    fp32 = load_model(str(tiny_model), precision=CPU_FLOAT32)
    bf16 = load_model(str(tiny_model), precision=resolve_precision("cpu", "bfloat16"))
    prompts = [[{"role": "user", "content": q}] for q in ("How are you?", "What is luck?", "Name a colour.")]
    params = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=6, batch_size=3, seed=1)
    assert len(LocalGenerator(bf16, tokenizer).generate(prompts, params)) == 3
    questions, answers = ["How are you?", "What is luck?"], ["Fine, thanks.", "Chance, mostly."]
    exact = NllScorer(fp32, tokenizer)(questions, answers)
    rounded = NllScorer(bf16, tokenizer)(questions, answers)
    assert rounded == pytest.approx(exact, abs=0.1)


TENSOR_FACTORIES = {"tensor", "arange", "zeros", "ones", "full", "empty", "rand", "randn", "randint", "Generator"}


@pytest.mark.parametrize("module", ["generate/_local.py", "judge/_signals.py"])
def test_every_tensor_is_made_on_a_named_device(module):
    """Sampling and likelihood code makes no tensor on the default device (the CPU) beside a GPU model's."""
    tree = ast.parse((SRC / module).read_text())
    undirected = [
        f"{module}:{node.lineno} torch.{node.func.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "torch"
        and node.func.attr in TENSOR_FACTORIES
        and "device" not in {k.arg for k in node.keywords}
    ]
    assert not undirected


# ---- device and dtype per stage ----------------------------------------------------------------------


def stages(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())["stages"]


def rewrite_stages(run: Path, change) -> None:
    path = run / "manifest.json"
    manifest = json.loads(path.read_text())
    for name, record in manifest["stages"].items():
        change(name, record)
    path.write_text(json.dumps(manifest))


def resume(tiny_model: Path, run: Path, **overrides) -> str:
    console = Console(record=True, width=200)
    traitloop.run(parse_config(tiny_config(tiny_model, **overrides)), output=run, console=console)
    return console.export_text()


def test_stages_that_run_a_model_record_device_and_dtype_outside_their_inputs(finished_run):
    for name, record in stages(finished_run).items():
        if name == "cycle_000/data":  # sft's cycle 0 copies the seed set: no model ran
            assert "device" not in record and "dtype" not in record
        else:
            assert (record["device"], record["dtype"]) == ("cpu", "float32"), name
        assert "device" not in json.dumps(record["inputs"]) and "dtype" not in json.dumps(record["inputs"])


@pytest.fixture
def made_on_a_gpu(finished_run, tmp_path) -> Path:
    """A copy of the finished run whose stages say they were made on a GPU in bfloat16."""
    run = tmp_path / "moved"
    shutil.copytree(finished_run, run)

    def on_gpu(name: str, record: dict) -> None:
        if "device" in record:
            record.update(device="cuda", dtype="bfloat16")

    rewrite_stages(run, on_gpu)
    return run


def test_a_finished_run_moved_to_other_hardware_is_kept_with_a_note(tiny_model, made_on_a_gpu):
    before = stages(made_on_a_gpu)
    printed = resume(tiny_model, made_on_a_gpu)
    assert "note: stage base/eval (and 8 more stages) was made on cuda/bfloat16, now cpu/float32" in printed
    assert stages(made_on_a_gpu) == before  # nothing redone


def test_a_run_refuses_to_mix_precisions_unless_allowed(tiny_model, made_on_a_gpu):
    rewrite_stages(made_on_a_gpu, lambda name, record: record.update(status="killed") if "cycle_002" in name else None)
    with pytest.raises(UserError) as refused:
        resume(tiny_model, made_on_a_gpu)
    message = str(refused.value)
    assert "stage cycle_002/data would run in float32 (cpu/float32)" in message
    assert "stage base/eval of this run was made in bfloat16 (cuda/bfloat16)" in message
    assert "dtype: bfloat16" in message and "allow_mixed_precision: true" in message
    assert stages(made_on_a_gpu)["cycle_002/data"]["status"] == "killed"  # refused before any work

    resume(tiny_model, made_on_a_gpu, allow_mixed_precision=True)
    made = {name: (r["device"], r["dtype"]) for name, r in stages(made_on_a_gpu).items() if "device" in r}
    assert {made[f"cycle_002/{kind}"] for kind in ("data", "train", "eval")} == {("cpu", "float32")}
    assert made["cycle_001/eval"] == ("cuda", "bfloat16")  # kept as it was


def test_runs_made_before_precision_was_recorded_resume_without_a_note(tiny_model, finished_run, tmp_path):
    run = tmp_path / "old"
    shutil.copytree(finished_run, run)
    rewrite_stages(run, lambda name, record: [record.pop(key, None) for key in ("device", "dtype")])
    before = stages(run)
    printed = resume(tiny_model, run)
    assert "note:" not in printed and stages(run) == before


def test_train_stages_record_their_training_dtype_and_a_run_refuses_to_mix_them(tiny_model, finished_run, tmp_path):
    """A chain trained partly in bfloat16 (a CPU with it natively) and partly in float32 (one without) mixes
    precisions like any other: each train stage records what it trained in, and a resume elsewhere stops."""
    trains = dtype_name(resolve_training_precision().dtype)
    recorded = {name: record.get("train_dtype") for name, record in stages(finished_run).items()}
    assert {recorded[name] for name in recorded if name.endswith("/train")} == {trains}
    assert all(recorded[name] is None for name in recorded if not name.endswith("/train"))

    other = "float32" if trains == "bfloat16" else "bfloat16"
    run = tmp_path / "elsewhere"
    shutil.copytree(finished_run, run)

    def trained_elsewhere(name: str, record: dict) -> None:
        if "train_dtype" in record:
            record["train_dtype"] = other
        if "cycle_002" in name:
            record["status"] = "killed"

    rewrite_stages(run, trained_elsewhere)
    with pytest.raises(UserError) as refused:
        resume(tiny_model, run)
    message = str(refused.value)
    assert f"stage cycle_002/train would train in {trains}, but stage cycle_000/train of this run trained in" in message
    assert f"trained in {other}: one chain of generations would mix training precisions" in message
    assert "dtype: float32" in message and "allow_mixed_precision: true" in message
    resume(tiny_model, run, allow_mixed_precision=True)
    assert stages(run)["cycle_002/train"]["train_dtype"] == trains

    # Train stages recorded before train_dtype trained in the run's dtype: a run made so is compared by it.
    def recorded_before(name: str, record: dict) -> None:
        if name.endswith("/train"):
            record.pop("train_dtype", None)
            record["dtype"] = other
        if "cycle_002" in name:
            record["status"] = "killed"

    rewrite_stages(run, recorded_before)
    with pytest.raises(UserError, match="but stage cycle_000/train of this run"):  # trained, or made, in the other
        resume(tiny_model, run)
