"""The server generation backend against a real llama.cpp server serving the embedded SmolLM2 GGUF.

Run with ``pytest -m server`` (CI does); needs the ``server`` extra. Every answer comes from the real server.
"""

import json

import pytest
from conftest import import_or_skip, tiny_config
from faults import FlakyProxy

import traitloop
from traitloop.api import parse_config
from traitloop.errors import UserError
from traitloop.generate import SamplingParams, server_generator
from traitloop.judge._llama_server import MODEL_ALIAS, llama_server
from traitloop.models import gguf_path

import_or_skip("llama_cpp.server", reason="the llama.cpp server is not installed: pip install -e '.[server]'")
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
    assert "spider" in together[2]  # the third answer is about the third question (with its system prompt, the
    # GGUF template's default, the model answers the first one greedily with "L'Étoile, la Cité ...", not Paris)


def test_each_prompt_is_sampled_with_its_own_seed(server):
    """Exact repeats cannot be asked of llama.cpp (its prompt cache changes the numbers slightly between
    requests), but one call must not give every copy of a prompt the same seed."""
    generator = server_generator(server, MODEL_ALIAS, concurrency=2)
    params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=24, seed=7)
    answers = generator.generate(chats(["Tell me about your day."] * 3), params)
    assert len(set(answers)) == 3 and all(answers)


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
    counting = FlakyProxy(server, [])  # no faults: it forwards every request, and counts them
    config["generation"]["server"]["base_url"] = counting.url
    with pytest.raises(UserError, match=r"would not load the adapter .*--enable-lora"):
        traitloop.run(parse_config(config), output=folder)
    counting.close()

    rows = [json.loads(line) for line in (folder / "base" / "eval.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and all(r["answer"] for r in rows)
    assert counting.counts == {"ok": len(rows) + 1}  # every base answer, then generation 0's adapter refused
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["stages"]["base/eval"]["status"] == "done"
    assert manifest["stages"]["cycle_000/train"]["status"] == "done"
    assert (folder / "cycle_000" / "adapter" / "adapter_model.safetensors").is_file()
