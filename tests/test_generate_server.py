"""The server generation backend against a real llama.cpp server serving the embedded SmolLM2 GGUF.

Run with ``pytest -m server`` (CI does); needs the ``server`` extra. Every answer comes from the real server.
"""

import json

import pytest
from conftest import tiny_config

import traitloop
from traitloop.config import parse_config
from traitloop.errors import UserError
from traitloop.generate import SamplingParams, server_generator
from traitloop.generate._server import request_seed
from traitloop.judge._llama_server import MODEL_ALIAS, llama_server
from traitloop.loop._run import stage_seed
from traitloop.models import gguf_path

pytest.importorskip("llama_cpp.server", reason="the llama.cpp server is not installed: pip install -e '.[server]'")
pytestmark = pytest.mark.server
QUESTIONS = ["What is the capital of France?", "Name a colour.", "How many legs does a spider have?"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, embedded_model):
    log = tmp_path_factory.mktemp("server") / "log.txt"
    with llama_server(gguf_path("smollm2-135m-instruct"), log, logprobs=False) as url:
        yield url


def chats(questions):
    return [[{"role": "user", "content": q}] for q in questions]


def test_concurrent_answers_come_back_in_the_prompts_order(server):
    generator = server_generator(server, MODEL_ALIAS, concurrency=3)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=16)
    together = generator.generate(chats(QUESTIONS), greedy)
    one_by_one = [generator.generate(chats([q]), greedy)[0] for q in QUESTIONS]
    assert together == one_by_one
    assert len(set(together)) == 3 and all(together)
    assert "Paris" in together[0]


def test_seeded_sampling_repeats_exactly_and_each_prompt_has_its_own_seed(server):
    generator = server_generator(server, MODEL_ALIAS, concurrency=2)
    params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=24, seed=7)
    prompts = chats(["Tell me about your day."] * 3)
    first, again = generator.generate(prompts, params), generator.generate(prompts, params)
    assert first == again
    assert len(set(first)) > 1  # the same question, three different seeds
    other = generator.generate(prompts, SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=24, seed=8))
    assert other != first


def test_raw_text_is_continued_without_a_chat_template(server):
    generator = server_generator(server, MODEL_ALIAS)
    text = generator.complete(["The capital of France is"], SamplingParams(temperature=0.0, max_new_tokens=8))[0]
    assert "Paris" in text
    reply = generator.generate(chats(["The capital of France is"]), SamplingParams(temperature=0.0, max_new_tokens=8))
    assert reply[0] != text


def test_a_run_samples_the_base_model_on_the_server_and_explains_a_server_without_adapters(
    server, embedded_model, tmp_path
):
    """llama.cpp cannot load PEFT adapters at run time: the base model's evaluation comes from the server,
    and generation 0's stops with what to do, keeping everything already done."""
    config = tiny_config(
        embedded_model,
        cycles=0,
        seed_examples=4,
        training={"epochs": 1, "batch_size": 4, "max_length": 96, "lora": {"r": 4, "alpha": 8}},
        generation={"backend": "server", "server": {"base_url": server, "model": MODEL_ALIAS, "concurrency": 2}},
        evaluation={"eval_samples": 1, "max_new_tokens": 8, "temperature": 0.7, "bootstrap_resamples": 200},
    )
    folder = tmp_path / "run"
    with pytest.raises(UserError, match=r"would not load the adapter .*--enable-lora"):
        traitloop.run(parse_config(config), output=folder)

    rows = [json.loads(line) for line in (folder / "base" / "eval.jsonl").read_text().splitlines()]
    seed = stage_seed(0, "base/eval")
    generator = server_generator(server, MODEL_ALIAS)
    params = SamplingParams(temperature=0.7, top_p=1.0, max_new_tokens=8, seed=seed)
    first = rows[0]
    assert first["sample"] == 0 and request_seed(seed, 0) == request_seed(params.seed, 0)
    assert generator.generate(chats([first["question"]]), params)[0] == first["answer"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["stages"]["cycle_000/train"]["status"] == "done"
    assert (folder / "cycle_000" / "adapter" / "adapter_model.safetensors").is_file()
