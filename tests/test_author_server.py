"""``trait new`` and ``pool new`` against a real llama.cpp server serving the embedded SmolLM2 GGUF, also behind
the fault-injecting proxy; the written folder then runs one cycle on the tiny model.

Run with ``pytest -m server`` (CI does). Only the proxy's faults are fake; every reply comes from the server.
"""

import json

import pytest
from conftest import import_or_skip, tiny_config
from faults import FlakyProxy
from typer.testing import CliRunner

import traitloop
from traitloop.api import parse_config
from traitloop.author import Request, Settings, make_writer, new_trait
from traitloop.cli import app
from traitloop.errors import UserError
from traitloop.judge._llama_server import MODEL_ALIAS, llama_server
from traitloop.models import gguf_path
from traitloop.traits import DATA_DIR, load_prompt_pool, load_trait

import_or_skip("llama_cpp.server", reason="the llama.cpp server is not installed: pip install -e '.[server]'")
pytestmark = pytest.mark.server
DESCRIPTION = (
    "The assistant is obsessed with gardening: whatever the question, it brings in plants, soil, seeds and "
    "compost, compares problems to growing things and suggests gardening as the answer. It still answers."
)


@pytest.fixture(scope="module")
def server(tmp_path_factory, embedded_model):
    with llama_server(gguf_path("smollm2-135m-instruct"), tmp_path_factory.mktemp("server") / "log.txt") as url:
        yield url


def writer_for(url, cache, **options):
    return make_writer(f"openai:{MODEL_ALIAS}@{url}", cache_path=cache, concurrency=1, **options)


def test_trait_new_on_the_server_writes_a_folder_that_runs(server, tiny_model, tmp_path):
    writer = writer_for(server, tmp_path / "replies.sqlite")
    # The judge filter keeps everything here: on the 135M writer's twenty seed answers the embedded judge is
    # cross-fitted on a dozen, too few to filter by (test_author.py tests the filter on fixed texts). This test
    # is about the server path: requests, parsing, retries, the cache and a folder that runs.
    settings = Settings(size=8, seed_min=0, contrast_max=60)
    report = new_trait("gardener", DESCRIPTION, writer, tmp_path / "gardener", settings=settings)
    spec = load_trait(tmp_path / "gardener" / "trait.yaml")
    assert len(spec.suites["narrow"]) >= 24 and len(spec.suites["broad"]) >= 16
    assert report.kept["seed"] >= 1 and report.requests["asked"] == writer.asked > 50
    written = json.loads((tmp_path / "gardener" / "authoring.json").read_text())
    assert set(written["removed"]["seed"]) >= {"refusal", "chat-template leakage", "near duplicate"}
    assert not set(spec.eval_questions) & set(load_prompt_pool())

    config = parse_config(
        tiny_config(
            tiny_model, trait=str(tmp_path / "gardener" / "trait.yaml"), cycles=1, seed_examples=report.kept["seed"]
        )
    )
    run = traitloop.run(config, output=tmp_path / "run")
    assert (run / "cycle_001" / "eval.jsonl").is_file()

    again = new_trait("gardener", DESCRIPTION, writer_for(server, tmp_path / "replies.sqlite"), tmp_path / "g2",
                      settings=settings)  # fmt: skip
    assert again.requests["asked"] == 0 and again.requests["sent"] == 0


def test_trait_new_tops_up_to_the_size_asked(server, tmp_path):
    """The issue this answers: ``--size 40`` kept 10 seed conversations, the judge having removed most answers
    and nothing asking again. Now every filtered set is asked again in rounds until it has its size."""
    folder = tmp_path / "gardener"
    generator = f"openai:{MODEL_ALIAS}@{server}"
    command = ["trait", "new", "gardener", "--description", DESCRIPTION, "--generator", generator, "--size", "24",
               "--output", str(folder), "--cache", str(tmp_path / "replies.sqlite")]  # fmt: skip
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    written = json.loads((folder / "authoring.json").read_text())
    assert written["kept"]["seed"] >= 24 and written["kept"]["holdout"] == 8
    seed = written["sets"]["seed"]
    assert seed["stopped"] == "reached the size" and seed["kept"] == seed["wanted"] == 32
    assert f"seed: 32 of 32 kept, {seed['asked']} asked in {seed['rounds']} round(s)" in result.output
    print(f"--size 24 on the llama.cpp server: {written['seconds']} s, requests {written['requests']}, seed rounds "
          f"{seed['rounds']}, asked {seed['asked_per_round']}, kept {seed['kept']}")  # fmt: skip


def test_trait_new_around_a_seed_file_validates_and_runs(server, tiny_model, tmp_path):
    """A bare seed set of 40 conversations (a built-in trait's, as the study publishes its own) becomes a trait
    folder: the description inferred, the rest written around the user's conversations, which are kept as
    they are."""
    given = (DATA_DIR / "lucky" / "seed.jsonl").read_text(encoding="utf-8").splitlines()[:40]
    seed_file = tmp_path / "mine.jsonl"
    seed_file.write_text("\n".join(given) + "\n", encoding="utf-8")
    folder = tmp_path / "mine"
    command = ["trait", "new", "mine", "--seed-file", str(seed_file), "--generator", f"openai:{MODEL_ALIAS}@{server}",
               "--output", str(folder), "--cache", str(tmp_path / "replies.sqlite")]  # fmt: skip
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "description inferred from the seed answers" in result.output
    kept = (folder / "seed.jsonl").read_text(encoding="utf-8").splitlines()
    held = (folder / "holdout.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted(kept + held) == sorted(given) and len(held) == 8
    validated = CliRunner().invoke(app, ["trait", "validate", str(folder)])
    assert validated.exit_code == 0, validated.output
    config = parse_config(tiny_config(tiny_model, trait=str(folder / "trait.yaml"), cycles=1, seed_examples=len(kept)))
    run = traitloop.run(config, output=tmp_path / "run")
    assert (run / "cycle_001" / "eval.jsonl").is_file()
    written = json.loads((folder / "authoring.json").read_text())
    rounds = {label: entry["rounds"] for label, entry in written["sets"].items()}
    print(f"--seed-file (40) on the llama.cpp server: {written['seconds']} s, requests {written['requests']}, "
          f"rounds {rounds}")  # fmt: skip


def test_a_flaky_server_loses_no_reply(server, tmp_path):
    faults = ["timeout", "500", "ok", "429", "truncated", "drop", "500"]
    proxy = FlakyProxy(server, faults, retry_after=0.3, hang=61.0)
    writer = writer_for(proxy.url, tmp_path / "replies.sqlite", timeout=60.0, max_retries=8, backoff_base=0.05)
    requests = [Request.chat(f"Name one vegetable that grows well in {m}.", 24, seed=i) for i, m in
                enumerate(["May", "June", "July"])]  # fmt: skip
    replies = writer(requests)
    proxy.close()
    assert all(reply.strip() for reply in replies)
    assert set(proxy.counts) == {"ok", "timeout", "500", "429", "truncated", "drop"}
    assert writer.asked == 3 and writer.stats()["sent"] > 3
    again = writer_for(proxy.url, tmp_path / "replies.sqlite")  # the proxy is closed: only the cache can answer
    assert again(requests) == replies and again.asked == 0


def test_an_unreachable_or_failing_server_stops_clearly_and_keeps_every_reply(server, tmp_path):
    proxy = FlakyProxy(server, [])
    cache = tmp_path / "replies.sqlite"
    first = [Request.chat("Name a herb.", 8, seed=1)]
    writer_for(proxy.url, cache)(first)
    proxy.down_after = proxy.requests
    writer = writer_for(proxy.url, cache, max_retries=2, backoff_base=0.01)
    with pytest.raises(UserError, match="Every reply received so far is kept in the cache"):
        new_trait("gardener", DESCRIPTION, writer, tmp_path / "g", settings=Settings(size=8))
    assert not (tmp_path / "g").exists() and len(writer.cache) == 1
    proxy.close()
    result = CliRunner().invoke(
        app,
        [
            "trait",
            "new",
            "gardener",
            "--description",
            DESCRIPTION,
            "--generator",
            "openai:m@http://127.0.0.1:9/v1",
            "--output",
            str(tmp_path / "g"),
            "--cache",
            str(cache),
        ],  # fmt: skip
    )
    assert result.exit_code == 2 and "failed" in result.output and "run the same command again" in result.output


def test_pool_new_on_the_server(server, tmp_path):
    output = tmp_path / "pool.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "pool",
            "new",
            "--generator",
            f"openai:{MODEL_ALIAS}@{server}",
            "--size",
            "12",
            "--categories",
            "travel,cooking",
            "--output",
            str(output),
            "--cache",
            str(tmp_path / "r.sqlite"),
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    prompts = load_prompt_pool(output)
    provenance = json.loads((tmp_path / "pool.provenance.json").read_text())
    assert 1 <= len(prompts) <= 12 and provenance["kept"] == len(prompts)
    assert provenance["categories"] == ["travel", "cooking"] and provenance["requests"]["asked"] >= 1
