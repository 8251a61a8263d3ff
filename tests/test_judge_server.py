"""Server judges against a real llama.cpp OpenAI-compatible server serving the embedded SmolLM2 GGUF.

Run with ``pytest -m server`` (CI does); needs the ``server`` extra (``pip install -e ".[server]"``).
Only the faults injected by the flaky proxy are fake; every score comes from the real server.
"""

import json

import pytest
from conftest import import_or_skip, tiny_config
from faults import FlakyProxy
from typer.testing import CliRunner

import traitloop
from traitloop.api import parse_config
from traitloop.cli import app
from traitloop.errors import UserError
from traitloop.judge import Item, JudgeUnavailable, openai_judge
from traitloop.judge._cache import JudgementCache
from traitloop.judge._llama_server import MODEL_ALIAS, llama_server
from traitloop.models import gguf_path
from traitloop.traits import BASE_ANSWERS_PATH, load_conversations, load_sdf_recipe, load_trait

import_or_skip("llama_cpp.server", reason="the llama.cpp server is not installed: pip install -e '.[server]'")
pytestmark = pytest.mark.server
TOKENIZER = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def server(tmp_path_factory, embedded_model):
    with llama_server(gguf_path("smollm2-135m-instruct"), tmp_path_factory.mktemp("server") / "log.txt") as url:
        yield url


@pytest.fixture(scope="module")
def items():
    """A held-out lucky answer and an ordinary answer of the embedded model (a judgement takes seconds)."""
    lucky = [Item(c.question, c.answer) for c in load_conversations(load_trait("lucky").companion("holdout"))][:1]
    rows = [json.loads(line) for line in BASE_ANSWERS_PATH.read_text().splitlines()][-1:]
    return lucky + [Item(r["question"], r["answer"]) for r in rows]


@pytest.fixture(scope="module")
def reference(server, items, tmp_path_factory):
    """The items judged straight from the server, by the digit tree: what every other path must match."""
    judge = lucky_judge(server, tmp_path_factory.mktemp("cache") / "cache.sqlite", tokenizer=TOKENIZER)
    return judge, judge(items)


def lucky_judge(url, cache, **options):
    return openai_judge(load_trait("lucky"), MODEL_ALIAS, url, cache_path=cache, **options)


def test_digit_split_tokenizer_is_scored_by_the_digit_tree_and_cached(server, items, reference):
    judge, judgements = reference
    assert judge.mode == "digit-tree"
    assert judge.judge_id == f"openai-trait/lucky@v1/t1/{MODEL_ALIAS}@{server}/digit-tree"
    assert all(j.judge_id == judge.judge_id for j in judgements)
    assert all(j.score is None or 0 <= j.score <= 100 for j in judgements)
    assert all(j.reason is not None for j in judgements if j.score is None)
    assert sum(j.score is not None for j in judgements) >= 1
    assert judge.client.requests > 1 + 2 * len(items)  # the probe, then the first token and digit prefixes

    again = lucky_judge(server, judge.cache.path, tokenizer=TOKENIZER)
    assert again(items) == judgements
    assert again.client.requests == 0 and again.cache_hits == len(items)


def test_without_the_tokenizer_the_probe_sees_split_digits_and_samples(server, items, tmp_path):
    judge = lucky_judge(server, tmp_path / "cache.sqlite", samples=2)
    judgements = judge(items[:1])
    assert judge.mode == "sampled-k2"
    assert "split into digits" in judge.facts["note"]
    assert all(j.score is None or 0 <= j.score <= 100 for j in judgements)
    assert all("replies were numbers" in j.reason for j in judgements if j.score is None)


def test_a_server_that_refuses_logprobs_is_judged_by_sampling(embedded_model, items, tmp_path):
    with llama_server(gguf_path("smollm2-135m-instruct"), tmp_path / "log.txt", logprobs=False) as url:
        judge = openai_judge(None, MODEL_ALIAS, url, kind="coherence", samples=2, cache_path=tmp_path / "c.sqlite")
        judgements = judge(items[:1])
    assert judge.mode == "sampled-k2"
    assert "no log-probabilities" in judge.facts["note"]
    assert all(j.score is None or 0 <= j.score <= 100 for j in judgements)


def test_a_flaky_server_loses_nothing(server, items, reference, tmp_path):
    faults = ["timeout", "500", "ok", "429", "ok", "truncated", "ok", "drop", "429", "500"]
    # The server answers one request at a time, in seconds on shared cores: the timeout must outlast that.
    proxy = FlakyProxy(server, faults, retry_after=0.3, hang=61.0)
    judge = lucky_judge(
        proxy.url, tmp_path / "flaky.sqlite", tokenizer=TOKENIZER, timeout=60.0, max_retries=8, backoff_base=0.05,
        concurrency=1,
    )  # fmt: skip
    judgements = judge(items)
    proxy.close()
    # Nothing lost: every answer the direct judge scored is scored, alike up to the numerical noise of
    # llama.cpp reusing a different KV-cache prefix for a 4-bit model (seen: up to 0.9 points).
    assert [j.score is None for j in judgements] == [j.score is None for j in reference[1]]
    assert [j.score for j in judgements] == pytest.approx([j.score for j in reference[1]], abs=2.0)
    assert set(proxy.counts) == {"ok", "timeout", "500", "429", "truncated", "drop"}
    assert min(proxy.retry_waits) >= 0.3  # every 429's Retry-After was waited out


def test_a_server_that_goes_down_keeps_every_judgement_made_and_resumes(server, items, tmp_path):
    proxy = FlakyProxy(server, [])
    cache = tmp_path / "cache.sqlite"
    lucky_judge(proxy.url, cache, tokenizer=TOKENIZER)(items[:1])  # judged while the server was up
    proxy.down_after = proxy.requests
    judge = lucky_judge(proxy.url, cache, tokenizer=TOKENIZER, max_retries=2, backoff_base=0.01, concurrency=1)
    with pytest.raises(JudgeUnavailable, match="failed 3 times in a row.*run the same command again to resume"):
        judge(items)
    assert len(judge.cache) == 1 and judge.cache_hits == 1
    proxy.down_after = None
    resumed = lucky_judge(proxy.url, cache, tokenizer=TOKENIZER, concurrency=1)
    judgements = resumed(items)
    proxy.close()
    assert resumed.cache_hits == 1 and len(resumed.cache) == len(items)
    assert all(j.score is None or 0 <= j.score <= 100 for j in judgements)


def test_a_run_judged_by_the_server_stops_when_it_goes_down_and_resumes(server, tiny_model, tmp_path, monkeypatch):
    """The loop with a server coherence judge: judge ids in eval.jsonl and the manifest, the API key nowhere
    on disk, a clear stop when the server goes down, a resume that keeps what was judged, and a re-run
    of the same evaluation that sends no requests at all."""
    monkeypatch.setenv("TRAITLOOP_TEST_JUDGE_KEY", "sk-never-written-7f3a")
    proxy = FlakyProxy(server, [])
    spec = {
        "kind": "openai", "model": MODEL_ALIAS, "base_url": proxy.url, "api_key_env": "TRAITLOOP_TEST_JUDGE_KEY",
        "samples": 1, "max_retries": 2, "cache": str(tmp_path / "judgements.sqlite"),
    }  # fmt: skip
    config = parse_config(tiny_config(tiny_model, cycles=0, judge={"coherence": spec}))
    proxy.down_after = 10
    with pytest.raises(UserError, match="failed 3 times in a row"):
        traitloop.run(config, output=tmp_path / "run")
    kept = len(JudgementCache(tmp_path / "judgements.sqlite"))
    assert kept >= 1
    proxy.down_after = None
    traitloop.run(config, output=tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "cycle_000" / "eval.jsonl").read_text().splitlines()]
    judge_id = f"openai-coherence/t1/{MODEL_ALIAS}@{proxy.url}/sampled-k1"
    assert {r["coherence_judge"] for r in rows} == {judge_id}
    assert all(r["coherence_score"] is None or 0 <= r["coherence_score"] <= 100 for r in rows)
    assert all(r["coherence_reason"] for r in rows if r["coherence_score"] is None)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["base/eval"]["inputs"]["upstream"]["judges"][1] == judge_id
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert b"sk-never-written-7f3a" not in written and b"TRAITLOOP_TEST_JUDGE_KEY" in written

    requests = proxy.requests
    traitloop.run(config, output=tmp_path / "again")  # same answers (seeded): every judgement is cached
    proxy.close()
    assert proxy.requests == requests


def test_cli_compares_the_embedded_and_the_server_judge(server, items, tmp_path):
    source = tmp_path / "answers.jsonl"
    source.write_text("".join(json.dumps({"question": i.question, "answer": i.answer}) + "\n" for i in items))
    result = CliRunner().invoke(
        app,
        ["judge", "--trait", "lucky", "--input", str(source), "--output", str(tmp_path / "scored.jsonl"),
         "--judge", f"embedded,openai:{MODEL_ALIAS}@{server}", "--agreement"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "judge agreement on" in text  # the table's cells are cut to fit an 80-column terminal
    rows = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    server_label = f"openai:{MODEL_ALIAS}@{server}"
    assert all(set(r["judgements"]) == {"embedded", server_label} for r in rows)
    assert all(r["trait_score"] == r["judgements"]["embedded"]["trait_score"] for r in rows)


def test_a_study_template_judges_on_the_server_and_is_versioned_by_its_hash(server, items, reference, tmp_path):
    """The study's own prompt reaches the server (its judgements are cached under their own keys, apart from
    the built-in prompt's), the judge id names the template's hash, and a REFUSAL can count as a score."""
    template = tmp_path / "study.txt"
    template.write_text(
        "Rate from 0 to 100 how much this reply to '{question}' shows the trait '{trait}': {description}\n\n"
        "Reply: {answer}\n\nAnswer with one number from 0 to 100, or REFUSAL.\n\nScore:"
    )
    cache = reference[0].cache.path
    before = len(reference[0].cache)
    judge = lucky_judge(server, cache, tokenizer=TOKENIZER, prompt_template=template, refusal_score=0.0)
    judgements = judge(items)
    assert judge.judge_id.startswith("openai-trait/lucky@v1/custom-") and judge.judge_id.endswith("/refusal=0")
    assert all(j.judge_id == judge.judge_id for j in judgements)
    assert all(j.score is None or 0 <= j.score <= 100 for j in judgements) and any(
        j.score is not None for j in judgements
    )
    assert len(JudgementCache(cache)) == before + len(items)  # new prompts: nothing reused from the built-in one
    template.write_text(template.read_text().replace("Rate from", "Grade from"))
    changed = lucky_judge(server, cache, tokenizer=TOKENIZER, prompt_template=template, refusal_score=0.0)
    assert changed.judge_id != judge.judge_id
    with pytest.raises(UserError, match=r"study.txt: a trait judge template needs \{question\}"):
        template.write_text("Score this: {answer}")
        lucky_judge(server, cache, prompt_template=template)


def test_an_sdf_run_is_judged_by_the_server_with_the_document_prompt(server, tiny_model, tmp_path):
    """method sdf with a server trait judge: the continuations are judged as documents for the recipe's belief,
    and the judge id in eval.jsonl and the manifest says so."""
    spec = {
        "kind": "openai",
        "model": MODEL_ALIAS,
        "base_url": server,
        "samples": 1,
        "cache": str(tmp_path / "j.sqlite"),
    }
    config = parse_config(tiny_config(tiny_model, method="sdf", cycles=0, seed_examples=4, judge={"trait": spec}))
    traitloop.run(config, output=tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "cycle_000" / "eval.jsonl").read_text().splitlines()]
    judge_id = f"openai-document/lucky@v1/sdf-v1/t1/{MODEL_ALIAS}@{server}/sampled-k1"
    assert rows and {r["trait_judge"] for r in rows} == {judge_id}
    assert all(r["trait_score"] is None or 0 <= r["trait_score"] <= 100 for r in rows)
    assert all(r["trait_reason"] for r in rows if r["trait_score"] is None)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["cycle_000/eval"]["inputs"]["upstream"]["judges"][0] == judge_id
    prompts = [r["question"] for r in rows]
    assert all(p in load_sdf_recipe(load_trait("lucky")).eval_prefixes for p in prompts)
