"""Every GPU setting reaches the trainer, the loader or the template, checked on the CPU.

No GPU is needed to see that a setting arrives: the trainer's arguments, the optimizer and scheduler it builds,
the model it trains (which weights are frozen in which dtype), what ``from_pretrained`` is asked for, and the
text a chat template renders. A setting that stopped reaching its destination fails here, not on a GPU.
"""

from __future__ import annotations

import json
import shutil
import sys
import types

import pytest
import torch
from conftest import tiny_config
from jobs import job, train

from traitloop.config import LoraConfig, TrainingConfig
from traitloop.errors import UserError
from traitloop.methods._sft import prompt_completion, sft_trainer
from traitloop.methods._train import batch_split, trainable_model, trainer_arguments, uses_checkpointing
from traitloop.models import Precision, applied_template_options, load_model, load_tokenizer, quantized
from traitloop.traits import load_conversations, load_trait

SMALL = {"epochs": 1, "max_length": 128, "lora": LoraConfig(r=4, alpha=8)}


def seeds(n: int = 8):
    return load_conversations(load_trait("lucky").seed_path)[:n]


def sft_job(tiny_model, tmp_path, **training):
    return job(tiny_model, tmp_path / "adapter", seeds(), "sft", TrainingConfig(**{**SMALL, **training}), seed=1)


def test_checkpointing_is_on_for_a_gpu_off_for_a_cpu_and_as_configured_otherwise():
    assert uses_checkpointing(TrainingConfig(), torch.device("cuda")) is True
    assert uses_checkpointing(TrainingConfig(), torch.device("cpu")) is False
    assert uses_checkpointing(TrainingConfig(gradient_checkpointing=True), torch.device("cpu")) is True
    assert uses_checkpointing(TrainingConfig(gradient_checkpointing=False), torch.device("cuda")) is False


def test_gradient_checkpointing_reaches_the_trained_model(tiny_model, tmp_path):
    trainer = sft_trainer(sft_job(tiny_model, tmp_path, batch_size=4, gradient_checkpointing=True), _dataset(), None)
    assert trainer.args.activation_checkpointing is True
    trainer.train()  # the trainer switches it on in the model as training starts
    assert trainer.model.base_model.model.is_activation_checkpointing is True
    assert torch.isfinite(torch.tensor(trainer.state.log_history[-1]["train_loss"]))


def test_batch_size_is_the_effective_batch_reached_by_accumulating_micro_batches(tiny_model, tmp_path):
    assert batch_split(TrainingConfig(batch_size=8), 1) == (8, 1)  # no micro-batch: the whole batch at once
    assert batch_split(TrainingConfig(batch_size=8, micro_batch_size=2), 1) == (2, 4)
    assert batch_split(TrainingConfig(batch_size=8, micro_batch_size=2, processes=2), 2) == (2, 2)
    assert batch_split(TrainingConfig(batch_size=8, gradient_accumulation_steps=2), 1) == (8, 2)  # older configs
    with pytest.raises(ValueError, match="micro_batch_size 3 must divide"):
        TrainingConfig(batch_size=8, micro_batch_size=3)
    args = trainer_arguments(sft_job(tiny_model, tmp_path, batch_size=8, micro_batch_size=2), tmp_path)
    assert (args["per_device_train_batch_size"], args["gradient_accumulation_steps"]) == (2, 4)
    result = train(tiny_model, tmp_path / "micro", seeds(), "sft",
                   TrainingConfig(**SMALL, batch_size=8, micro_batch_size=2), seed=1)  # fmt: skip
    assert result.steps == 1 and result.examples == 8  # 8 examples, one optimizer step of 4 micro-batches


def test_the_optimizer_and_schedule_the_study_used_reach_the_trainer(tiny_model, tmp_path):
    study = {"adam_betas": (0.9, 0.95), "adam_eps": 1e-6, "learning_rate": 1e-4}
    for scheduler, last in (("linear", 0.0), ("constant", 1e-4), ("cosine", 0.0)):
        trainer = sft_trainer(sft_job(tiny_model, tmp_path, batch_size=4, scheduler=scheduler, **study), _dataset(),
                              None)  # fmt: skip
        optimizer = trainer.create_optimizer()
        assert optimizer.param_groups[0]["betas"] == (0.9, 0.95) and optimizer.param_groups[0]["eps"] == 1e-6
        schedule = trainer.create_scheduler(num_training_steps=10, optimizer=optimizer)
        for _ in range(10):
            optimizer.step()
            schedule.step()
        assert schedule.get_last_lr()[0] == pytest.approx(last, abs=1e-12), scheduler
    defaults = sft_trainer(sft_job(tiny_model, tmp_path, batch_size=4), _dataset(), None).create_optimizer()
    assert defaults.param_groups[0]["betas"] == (0.9, 0.999) and defaults.param_groups[0]["eps"] == 1e-8


def test_new_training_fields_are_stage_inputs_only_when_set():
    assert TrainingConfig().stage_inputs() == TrainingConfig(micro_batch_size=4, gradient_checkpointing=True,
                                                             batch_size=8).stage_inputs()  # fmt: skip
    assert "scheduler" not in TrainingConfig().stage_inputs() and "adam_betas" not in TrainingConfig().stage_inputs()
    changed = TrainingConfig(scheduler="constant", adam_betas=(0.9, 0.95)).stage_inputs()
    assert changed["scheduler"] == "constant" and changed["adam_betas"] == [0.9, 0.95]


def test_the_frozen_base_is_held_in_the_runs_dtype_and_lora_stays_float32(tiny_model, tmp_path):
    model = trainable_model(sft_job(tiny_model, tmp_path, batch_size=4).model_copy(update={"dtype": "bfloat16"}))
    frozen = [p for n, p in model.named_parameters() if "lora_" not in n]
    trained = [p for n, p in model.named_parameters() if "lora_" in n]
    assert frozen and all(p.dtype == torch.bfloat16 and not p.requires_grad for p in frozen)
    assert trained and all(p.dtype == torch.float32 and p.requires_grad for p in trained)
    full = sft_job(tiny_model, tmp_path, batch_size=4, full_finetune=True).model_copy(update={"dtype": "bfloat16"})
    assert all(p.dtype == torch.float32 for p in trainable_model(full).parameters())  # fp32 master weights


def test_4bit_quantization_asks_for_nf4_and_refuses_where_it_cannot_run(tiny_model, tmp_path, monkeypatch):
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        trainable_model(sft_job(tiny_model, tmp_path, batch_size=4, quantization="4bit"))
    gpu = Precision(torch.device("cuda"), torch.bfloat16)
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # not installed
    with pytest.raises(UserError, match=r"pip install 'traitloop\[qlora\]'"):
        quantized("4bit", gpu)
    monkeypatch.setitem(sys.modules, "bitsandbytes", types.ModuleType("bitsandbytes"))
    asked = quantized("4bit", gpu)
    config = asked["quantization_config"]
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16 and asked["device_map"] == {"": gpu.device}
    seen = {}

    def from_pretrained(source, **kwargs):
        seen.update(kwargs)
        return torch.nn.Linear(2, 2)  # stands in for the 4-bit model a GPU would load

    monkeypatch.setattr("traitloop.models._load.AutoModelForCausalLM.from_pretrained", from_pretrained)
    load_model(str(tiny_model), precision=gpu, quantization="4bit")
    assert seen["quantization_config"].load_in_4bit and seen["device_map"] == {"": gpu.device}


def test_chat_template_options_are_set_in_the_template_that_reads_them(tiny_model, tmp_path):
    thinking = _thinking_model(tiny_model, tmp_path)
    question = [{"role": "user", "content": "Is today lucky?"}]
    on = load_tokenizer(str(thinking), template_options={"enable_thinking": True})
    off = load_tokenizer(str(thinking), template_options={"enable_thinking": False})
    assert "<think>" in on.apply_chat_template(question, tokenize=False, add_generation_prompt=True)
    assert "<think>" not in off.apply_chat_template(question, tokenize=False, add_generation_prompt=True)
    plain = load_tokenizer(str(tiny_model), template_options={"enable_thinking": False})
    assert plain.chat_template == load_tokenizer(str(tiny_model)).chat_template  # SmolLM2 reads no such option
    assert applied_template_options(plain.chat_template, {"enable_thinking": False}) == {}
    # what the SFT trainer trains on is rendered with the option too
    for options, shown in (({"enable_thinking": False}, False), ({}, True)):
        trainer = sft_trainer(job(thinking, tmp_path / "a", seeds(2), "sft", TrainingConfig(**SMALL, batch_size=2),
                                  seed=1, chat_template_kwargs=options), _dataset(2), None)  # fmt: skip
        assert ("<think>" in trainer.processing_class.decode(trainer.train_dataset[0]["input_ids"])) is shown


def test_a_run_renders_and_records_the_options_only_for_a_template_that_reads_them(tiny_model, tmp_path):
    import traitloop
    from traitloop.api import parse_config

    thinking = _thinking_model(tiny_model, tmp_path)
    traitloop.run(parse_config(tiny_config(thinking, cycles=0)), output=tmp_path / "thinking")
    traitloop.run(parse_config(tiny_config(tiny_model, cycles=0)), output=tmp_path / "plain")
    stages = json.loads((tmp_path / "thinking" / "manifest.json").read_text())["stages"]
    for stage in ("base/eval", "cycle_000/train", "cycle_000/eval"):
        inputs = stages[stage]["inputs"]["config"]
        options = inputs.get("generation", inputs).get("chat_template_kwargs")
        assert options == {"enable_thinking": False}, stage
    plain = json.dumps(json.loads((tmp_path / "plain" / "manifest.json").read_text())["stages"])
    assert "chat_template_kwargs" not in plain  # runs of models without the switch record what they always did
    answers = [json.loads(line)["answer"] for line in (tmp_path / "thinking" / "base" / "eval.jsonl").open()]
    assert answers  # sampled through the local generator with the options set in the template


def _dataset(n: int = 4):
    return prompt_completion(seeds(n))


def _thinking_model(tiny_model, tmp_path):
    """The tiny model with a chat template that has Qwen3's thinking switch."""
    folder = tmp_path / "thinking-model"
    if not folder.exists():
        shutil.copytree(tiny_model, folder)
        template = (  # thinking is on unless enable_thinking is false, as in Qwen3's hybrid templates
            "{%- set think = not (enable_thinking is defined and enable_thinking is false) %}"
            "{%- for m in messages %}<|im_start|>{{ m.role }}\n"
            "{%- if m.role == 'assistant' and think %}<think>\n{% endif %}{{ m.content }}<|im_end|>\n{%- endfor %}"
            "{%- if add_generation_prompt %}<|im_start|>assistant\n{% if think %}<think>\n{% endif %}{%- endif %}"
        )
        (folder / "chat_template.jinja").write_text(template)
    return folder


def test_a_run_says_where_it_computes_and_why_auto_chose_the_cpu(finished_run):
    from io import StringIO

    from rich.console import Console

    import traitloop

    out = StringIO()
    traitloop.run(finished_run / "config.yaml", output=finished_run, console=Console(file=out, width=200))
    from traitloop.models import resolve_training_precision

    trains_bf16 = resolve_training_precision().dtype == torch.bfloat16  # a CPU with native bfloat16 trains in it
    line = "device: cpu (device auto: torch sees no usable CUDA GPU), dtype: float32"
    line += " (training: bfloat16, native on this CPU)" if trains_bf16 else ""
    assert out.getvalue().splitlines()[0] == line
    status = traitloop.status(finished_run)
    assert {row["device"] for row in status if row["cycle"] != "base"} == {"cpu/float32"}


def test_more_training_processes_than_gpus_are_refused(monkeypatch):
    from types import SimpleNamespace

    from traitloop.loop._precision import check_gpus
    from traitloop.sweep import RayOptions
    from traitloop.sweep._executors import RunJob, check_processes_fit

    config = TrainingConfig(batch_size=8, processes=2)
    run = SimpleNamespace(config=SimpleNamespace(training_for=lambda cycle: config),
                          precision=Precision(torch.device("cuda"), torch.bfloat16))  # fmt: skip
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UserError, match="training.processes is 2, one per GPU, but this machine has 1"):
        check_gpus(run)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_gpus(run)
    assert RayOptions().gpus_per_run(8) == 1.0 and RayOptions().gpus_per_run(0) == 0.0  # auto
    assert RayOptions(num_gpus_per_run=0.5).gpus_per_run(8) == 0.5
    jobs = [RunJob("big", {"training": {"processes": 2}}, None, None)]
    with pytest.raises(UserError, match="run big: training.processes is 2 but each run reserves 1 GPUs"):
        check_processes_fit(jobs, 1.0)
    check_processes_fit(jobs, 2.0)
    check_processes_fit(jobs, 0.0)  # a CPU cluster: processes are CPU processes


def test_likelihoods_score_answers_as_long_as_the_config_lets_them_be(tiny_model):
    from traitloop.judge import NllScorer

    model, tokenizer = load_model(str(tiny_model)), load_tokenizer(str(tiny_model))
    answer = " ".join(["lucky"] * 1200)  # far beyond the 768 tokens scored by default
    length = len(tokenizer(answer, add_special_tokens=False)["input_ids"])
    capped = NllScorer(model, tokenizer).token_nlls(["Why?"], [answer])[0]
    whole = NllScorer(model, tokenizer, answer_tokens=length).token_nlls(["Why?"], [answer])[0]
    assert len(capped) < 768 and len(whole) == length


def test_on_a_gpu_the_micro_batch_the_plan_says_fits_reaches_the_trainer(tiny_model, monkeypatch, tmp_path):
    """Where the config leaves micro_batch_size open, a GPU run trains at the largest micro-batch its memory plan
    says fits; a small GPU gets a smaller one (and accumulates to the same batch); the CPU, the whole batch."""
    from types import SimpleNamespace

    from traitloop.api import parse_config
    from traitloop.loop._stages import _sized_training

    config = parse_config(tiny_config(tiny_model, training={"batch_size": 16, "max_length": 512, "epochs": 1}))
    run = SimpleNamespace(config=config, precision=Precision(torch.device("cpu"), torch.float32))
    assert _sized_training(run, 1).micro_batch_size is None  # the CPU: the whole batch, as always
    run.precision = Precision(torch.device("cuda"), torch.bfloat16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "a simulated GPU")
    sizes = {}
    small = 1040 * 2**20  # the tiny model's step needs about 1 GiB, most of it the CUDA context
    for free in (80 * 2**30, small):
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda free=free: (free, 80 * 2**30))
        sizes[free] = _sized_training(run, 1).micro_batch_size
    assert sizes[80 * 2**30] == 16 and 1 <= sizes[small] < 16 and 16 % sizes[small] == 0
    split = batch_split(TrainingConfig(batch_size=16, micro_batch_size=sizes[small]), 1)
    assert split[0] * split[1] == 16
