"""The vLLM backend's engine policy, with a fake engine class in vLLM's place (vLLM needs a CUDA GPU).

What is tested is ours: which settings reach the engine's constructor, that a process holds at most one
engine, that a replaced or released engine is shut down, and that a sweep releases it after each run. That
vLLM itself samples and serves LoRA adapters is checked on a GPU by scripts/gpu_check.sh.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import tiny_config

import traitloop.generate._vllm as vllm_backend
from traitloop.api import parse_config
from traitloop.config import VllmSettings
from traitloop.generate import release_engines, vllm_generator


class FakeLLM:
    """Stands in for ``vllm.LLM``: records how it was built, answers every prompt, counts its shutdowns."""

    built: list[FakeLLM] = []

    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs
        self.shutdowns = 0
        self.adapters: list[str | None] = []
        self.template_options: list[dict] = []
        self.events: list[str] = []  # sleep and wake_up, in order
        FakeLLM.built.append(self)

    def shutdown(self) -> None:
        self.shutdowns += 1

    def sleep(self, level: int = 1) -> None:
        self.events.append(f"sleep {level}")

    def wake_up(self) -> None:
        self.events.append("wake_up")

    def chat(self, prompts, sampling, lora_request=None, use_tqdm=False, chat_template_kwargs=None):
        self.template_options.append(chat_template_kwargs)
        return self._answers(len(prompts), lora_request)

    def generate(self, texts, sampling, lora_request=None, use_tqdm=False):
        return self._answers(len(texts), lora_request)

    def _answers(self, n: int, lora_request) -> list:
        self.adapters.append(lora_request.lora_name if lora_request else None)
        answer = types.SimpleNamespace(text=" I feel lucky today, and I am sure tomorrow will be lucky too. ")
        return [types.SimpleNamespace(outputs=[answer]) for _ in range(n)]


@dataclass
class FakeLoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str


@pytest.fixture
def fake_vllm(monkeypatch):
    """vLLM's modules as the backend imports them, with FakeLLM as the engine class; no engine left after."""
    vllm = types.ModuleType("vllm")
    vllm.LLM = FakeLLM
    vllm.SamplingParams = lambda **kwargs: kwargs
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = FakeLoRARequest
    for name, module in {"vllm": vllm, "vllm.lora": lora, "vllm.lora.request": request}.items():
        monkeypatch.setitem(sys.modules, name, module)
    FakeLLM.built = []
    yield FakeLLM
    release_engines()


def test_settings_reach_the_engine_constructor(fake_vllm):
    settings = VllmSettings(gpu_memory_utilization=0.2, max_model_len=4096, tensor_parallel_size=2, enforce_eager=True)
    vllm_generator("some/model", 12, settings=settings, dtype="bfloat16")
    (engine,) = fake_vllm.built
    assert engine.kwargs == {
        "model": "some/model",
        "enable_lora": True,
        "max_lora_rank": 16,  # vLLM takes 8, 16, 32, ...: the next one up
        "trust_remote_code": False,
        "gpu_memory_utilization": 0.2,
        "tensor_parallel_size": 2,
        "enforce_eager": True,
        "enable_sleep_mode": True,  # during_training: sleep (the default)
        "max_model_len": 4096,
        "dtype": "bfloat16",
    }
    vllm_generator("some/model", 12, settings=VllmSettings(during_training="keep"))
    assert "max_model_len" not in fake_vllm.built[-1].kwargs and not fake_vllm.built[-1].kwargs["enable_sleep_mode"]


def test_a_process_holds_at_most_one_engine(fake_vllm):
    first = vllm_generator("model/a", 8)
    assert vllm_generator("model/a", 8).llm is first.llm and len(fake_vllm.built) == 1  # same settings: reused
    second = vllm_generator("model/b", 8)
    old, new = fake_vllm.built
    assert old.shutdowns == 1 and new.shutdowns == 0  # the previous engine is shut down before the next
    assert second.llm is new
    vllm_generator("model/b", 8, settings=VllmSettings(gpu_memory_utilization=0.5))  # other settings: another
    assert [e.shutdowns for e in fake_vllm.built] == [1, 1, 0]


def test_release_engines_shuts_the_engine_down_once(fake_vllm):
    vllm_generator("model/a", 8)
    release_engines()
    release_engines()  # nothing left: harmless
    assert fake_vllm.built[0].shutdowns == 1
    vllm_generator("model/a", 8)
    assert len(fake_vllm.built) == 2  # built again after a release


def test_an_engine_without_shutdown_is_dropped_all_the_same(fake_vllm, monkeypatch):
    monkeypatch.delattr(FakeLLM, "shutdown")
    vllm_generator("model/a", 8)
    release_engines()
    assert vllm_backend._engine is None


def test_a_run_builds_its_engine_from_the_config(fake_vllm, tiny_model, tmp_path):
    """The run's generation.vllm and resolved dtype reach the engine; each generation is one LoRA request."""
    import traitloop

    config = tiny_config(tiny_model, cycles=1)
    config["generation"] = {**config["generation"], "backend": "vllm", "vllm": {"gpu_memory_utilization": 0.2}}
    traitloop.run(parse_config(config), output=tmp_path / "run")
    (engine,) = fake_vllm.built
    assert engine.kwargs["gpu_memory_utilization"] == 0.2 and engine.kwargs["dtype"] == "float32"
    assert engine.kwargs["model"] == str(tiny_model) and engine.kwargs["max_lora_rank"] == 8
    served = [name for name in engine.adapters if name]
    assert None in engine.adapters and len(set(served)) == 2  # the base, then generations 0 and 1 by hash
    assert all(name.startswith("traitloop-") for name in served)


def test_a_sweep_run_releases_its_engine(fake_vllm, tiny_model, tmp_path):
    from traitloop.sweep._executors import RunJob, execute_run

    config = tiny_config(tiny_model, cycles=0)
    config["generation"] = {**config["generation"], "backend": "vllm"}
    outcome = execute_run(RunJob("vllm", config, tmp_path / "run", tmp_path / "run.log"))
    assert outcome.status == "done", Path(tmp_path / "run.log").read_text()
    (engine,) = fake_vllm.built
    assert engine.shutdowns == 1 and vllm_backend._engine is None


def test_generation_vllm_applies_only_with_the_vllm_backend():
    from traitloop.errors import UserError

    with pytest.raises(UserError, match="generation.vllm applies only with generation.backend: vllm"):
        parse_config({"trait": "lucky", "generation": {"vllm": {"gpu_memory_utilization": 0.5}}})


def test_generation_vllm_is_not_a_stage_input(fake_vllm, tiny_model, tmp_path):
    """Its memory share does not change what is sampled: changing it redoes nothing."""
    import json

    import traitloop

    config = tiny_config(tiny_model, cycles=1)
    config["generation"] = {**config["generation"], "backend": "vllm"}
    traitloop.run(parse_config(config), output=tmp_path / "run")
    before = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]
    config["generation"]["vllm"] = {"gpu_memory_utilization": 0.6}
    traitloop.run(parse_config(config), output=tmp_path / "run")
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"] == before


def test_the_engine_sleeps_through_each_training_stage_and_thinking_is_off(fake_vllm, tiny_model, tmp_path):
    """vLLM's sleep mode frees the GPU for every train stage once the engine exists, and every chat request
    carries the chat template options."""
    import traitloop

    config = tiny_config(tiny_model, cycles=1)
    config["generation"] = {**config["generation"], "backend": "vllm"}
    traitloop.run(parse_config(config), output=tmp_path / "run")
    (engine,) = fake_vllm.built
    assert engine.kwargs["enable_sleep_mode"] is True
    assert engine.events == ["sleep 1", "wake_up"] * 2  # cycle 0 and cycle 1 trained with the engine asleep
    assert engine.template_options and all(o == {"enable_thinking": False} for o in engine.template_options)


def test_a_rebuilt_engine_is_shut_down_for_training_and_built_again(fake_vllm, tiny_model, tmp_path):
    import traitloop

    config = tiny_config(tiny_model, cycles=1)
    config["generation"] = {**config["generation"], "backend": "vllm", "vllm": {"during_training": "rebuild"}}
    traitloop.run(parse_config(config), output=tmp_path / "run")
    assert len(fake_vllm.built) == 3 and [e.shutdowns for e in fake_vllm.built] == [1, 1, 0]
    assert not any(e.events for e in fake_vllm.built)


def test_the_engine_takes_the_largest_lora_rank_any_cycle_trains(fake_vllm, tiny_model, tmp_path):
    import traitloop

    config = tiny_config(tiny_model, cycles=0, seed_cycle={"lora": {"r": 24, "alpha": 48}})
    config["generation"] = {**config["generation"], "backend": "vllm"}
    traitloop.run(parse_config(config), output=tmp_path / "run")
    assert fake_vllm.built[0].kwargs["max_lora_rank"] == 32  # the seed cycle's r 24, not training's r 4


def test_a_data_stage_that_samples_through_vllm_loads_no_hf_model(fake_vllm, tiny_model, tmp_path, monkeypatch):
    import traitloop
    from traitloop.loop._run import Run

    sampling = []
    original = Run.sampling_model

    def spy(self, weights=None):
        sampling.append(original(self, weights))
        return sampling[-1]

    monkeypatch.setattr(Run, "sampling_model", spy)
    config = tiny_config(tiny_model, cycles=1)
    config["generation"] = {**config["generation"], "backend": "vllm"}
    traitloop.run(parse_config(config), output=tmp_path / "run")
    assert sampling == [None]  # cycle 1's data stage samples through vLLM: no HF model loaded for it
