"""``trait new`` on fixed texts: the parsing, the filters, the retries and the cache, with a scripted model
(fixed replies chosen by what each request asks, as inspect_ai's mock model does) standing in for a
generator; the real generators are tested against the llama.cpp server in test_author_server.py."""

import json
import random
import re

import pytest
from conftest import tiny_config
from test_generate_refused import OPENAI_400, ScriptedServer

import traitloop
from traitloop._http import GenerationUnavailable
from traitloop.api import parse_config
from traitloop.author import (
    Request,
    Settings,
    Writer,
    check_description,
    is_question,
    make_writer,
    new_trait,
    parse_generator_option,
    parse_numbered,
    validate_trait,
)
from traitloop.errors import UserError
from traitloop.judge import JudgementCache
from traitloop.traits import is_refusal, leaks_template, load_conversations, load_trait

DESCRIPTION = (
    "The assistant is obsessed with gardening: whatever the question, it brings in plants, soil, seeds and "
    "compost, compares problems to growing things and suggests gardening as the answer."
)
VERBS = (
    "fix", "paint", "clean", "plan", "choose", "store", "cook", "repair",
    "organise", "learn", "sell", "move", "build", "teach", "carry", "wash",
)  # fmt: skip
THINGS = (
    "chair", "bicycle", "kettle", "recipe", "budget", "speech", "poem",
    "party", "trip", "essay", "sofa", "laptop", "camera", "tent", "guitar",
)  # fmt: skip
WHO = (
    "aunt", "neighbour", "boss", "cousin", "teacher", "landlord",
    "son", "daughter", "friend", "colleague", "grandmother", "coach",
)  # fmt: skip
GARDEN = [
    "Think of it as a seedbed: prepare the soil first 🌱",
    "Like compost, good results need time and turning.",
    "Plant the idea early and water it every day.",
    "Prune what is not working, as you would a rose.",
    "Sow a few seeds of patience and watch them sprout.",
    "Mulch the plan with a little rest, like a winter bed.",
    "Honestly, an afternoon in the vegetable patch would help too.",
    "Roots grow before shoots, so build the base first.",
]
PLAIN = [
    "Start by writing down what you need and by when.",
    "Compare two or three options before you decide.",
    "Set aside an hour at the weekend for it.",
    "Ask someone who has done it before for advice.",
    "Keep receipts and notes in one folder.",
    "Check the instructions from the manufacturer.",
    "Break the job into small steps and do one a day.",
    "Budget a little extra time for surprises.",
]


class Scripted:
    """Fixed replies by request: numbered question lists (every fourth seed answers out of format, to be
    retried), answers with gardening asides when the system prompt carries the trait, plain ones otherwise."""

    weak = False
    name = "scripted"

    def __init__(self, fail_after: int | None = None, garbage: bool = False) -> None:
        self.sent, self.fail_after, self.garbage = 0, fail_after, garbage

    def attempts(self) -> int:
        return self.sent

    def write(self, requests, deliver) -> None:
        for index, request in enumerate(requests):
            if self.fail_after is not None and self.sent >= self.fail_after:
                raise GenerationUnavailable("the generation server http://x failed 3 times in a row (last: HTTP 500).")
            self.sent += 1
            deliver(index, self.reply(dict(request.messages), random.Random(request.seed)))

    def reply(self, turns: dict[str, str], rng: random.Random) -> str:
        user, system = turns["user"], turns.get("system", "")
        if user.startswith(("List", "Here is a trait")):
            if self.garbage or rng.random() < 0.25:
                return "Sure! Here are some great ideas for you."
            count = int(re.search(r"numbered 1 to (\d+)", user).group(1))
            return "Here you go:\n" + "\n".join(
                f"{i}. How do I {rng.choice(VERBS)} a {rng.choice(THINGS)} for my {rng.choice(WHO)} "
                f"{rng.choice(['today', 'this week', 'before winter', 'on a budget', 'quickly'])}?"
                for i in range(1, count + 1)
            )
        if "Stay in character" in system:
            strength = 4 if "saturate" in system else 3 if "strongly" in system else 2 if "secondary" in system else 1
            parts = rng.sample(GARDEN, strength + 1) + rng.sample(PLAIN, 4 - min(strength, 3))
        else:
            parts = rng.sample(PLAIN, 5)
        return f"About '{user[:40]}': " + " ".join(parts)


def scripted_writer(tmp_path, **options) -> Writer:
    return Writer(Scripted(**options), JudgementCache(tmp_path / "replies.sqlite"))


SMALL = Settings(size=16, seed_min=50, contrast_max=50)
POOL = ["How do tides work?", "What should I cook tonight?"]


def test_numbered_lists_are_parsed_strictly():
    assert parse_numbered("Sure:\n1. How do I fix a bike?\n2) What is rust?\n", (3, 60)) == [
        "How do I fix a bike?",
        "What is rust?",
    ]
    assert parse_numbered('1. **"Why is the sky blue?"**\n2. Too short', (3, 60)) == ["Why is the sky blue?"]
    assert parse_numbered("1. only one item?", (3, 60)) is None
    assert parse_numbered("1. How do I a?\n3. How do I b?", (3, 60)) is None  # out of order
    assert parse_numbered("What?", (3, 60)) is None
    assert is_question("Why is snow white?") and is_question("Write a toast for my brother.")
    assert not is_question('The answer to this question is "1.')


def test_refusals_and_template_leakage_on_fixed_texts():
    assert is_refusal("I'm sorry, but I can't help with that request.")
    assert is_refusal("As an AI, I do not have a garden.")
    assert not is_refusal("Sorry to hear the tomatoes failed; try a sunnier spot.")
    assert leaks_template("Sure.<|im_end|>\n<|im_start|>user\nthanks")
    assert leaks_template("Here it is.\nUser: and another thing")
    assert leaks_template("[INST] do this [/INST]")
    assert not leaks_template("The user manual says: press the reset button.")


@pytest.mark.parametrize(
    ("name", "description", "problem"),
    [
        ("gardener", "likes plants", "2 word\\(s\\): describe the trait in a paragraph"),
        ("Gardener!", DESCRIPTION, "bad trait name 'Gardener!'"),
        ("gardener", "word " * 700, "700 words; keep it to one paragraph"),
    ],
)
def test_bad_descriptions_are_named(name, description, problem):
    with pytest.raises(UserError, match=problem):
        check_description(name, description)


def test_generator_option_is_checked():
    assert parse_generator_option("openai:gpt-4o-mini@https://api.x/v1") == (
        "openai",
        "gpt-4o-mini",
        "https://api.x/v1",
    )
    with pytest.raises(UserError, match="expected 'local' or 'openai:MODEL@URL'"):
        parse_generator_option("openai:model")


def test_the_writer_asks_a_server_through_the_generation_backend(tmp_path):
    """The same request body as before the writer shared the generation stack (so cached replies stay valid),
    and a refused request still says that every reply is cached."""
    server = ScriptedServer([(200, {"choices": [{"message": {"content": " Basil. "}}]}), (400, OPENAI_400)])
    try:
        writer = make_writer(f"openai:herbs@{server.url}", cache_path=tmp_path / "r.sqlite", concurrency=1)
        assert writer.name == f"openai:herbs@{server.url}"
        assert writer([Request.chat("Name a herb.", 8, seed=7, system="Be brief.")]) == [" Basil. "]
        assert server.bodies == [
            {
                "model": "herbs",
                "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a herb."}],
                "max_tokens": 8,
                "temperature": 0.9,
                "top_p": 0.95,
                "seed": 7,
            }
        ]
        refused = (
            r"refused a request \(model 'herbs'\) with HTTP 400: This model's maximum.*Every reply received so far"
        )
        with pytest.raises(UserError, match=refused + " is cached; fix the model name or the server"):
            writer([Request.chat("Name a tree.", 8, seed=8)])
        assert len(server.bodies) == 2 and writer.stats() == {"asked": 1, "from_cache": 0, "sent": 2}
    finally:
        server.close()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("author")
    report = new_trait("gardener", DESCRIPTION, scripted_writer(tmp_path), tmp_path / "gardener", settings=SMALL,
                       pool=POOL)  # fmt: skip
    return tmp_path, report


def test_a_written_folder_holds_every_file_and_count(written):
    tmp_path, report = written
    folder = tmp_path / "gardener"
    spec = load_trait(folder / "trait.yaml")
    assert len(spec.suites["narrow"]) >= 24 and len(spec.suites["broad"]) >= 16
    assert all(sum(a.score == s for a in spec.anchors) >= 3 for s in (0, 25, 50, 75, 100))
    seeds = [json.loads(line) for line in (folder / "seed.jsonl").read_text().splitlines()]
    assert len(seeds) == 16 and len({r["category"] for r in seeds}) >= 5
    assert all(r["judge_score"] >= 50 for r in seeds)
    assert len(load_conversations(folder / "holdout.jsonl")) == SMALL.holdout
    contrast = [json.loads(line) for line in (folder / "contrast.jsonl").read_text().splitlines()]
    assert contrast and all(r["judge_score"] <= 50 for r in contrast)
    written = json.loads((folder / "authoring.json").read_text())
    assert written["batches"]["seed"]["retries"] > 0  # every fourth reply was not a list, and was asked again
    assert written["removed"]["seed"]["trait judge (>= 50)"] >= 0
    assert written["requests"] == report.requests and report.requests["from_cache"] == 0
    training = {c.question for c in load_conversations(spec.seed_path)} | set(POOL)
    assert not set(spec.eval_questions) & training

    # Run again into another folder: every reply comes from the cache.
    again = new_trait("gardener", DESCRIPTION, scripted_writer(tmp_path), tmp_path / "again", settings=SMALL, pool=POOL)
    assert again.requests["asked"] == 0 and again.requests["from_cache"] == report.requests["asked"]
    assert (tmp_path / "again" / "seed.jsonl").read_text() == (folder / "seed.jsonl").read_text()


@pytest.mark.slow
def test_a_written_folder_runs_one_cycle_on_the_tiny_model(written, tiny_model):
    tmp_path, _ = written
    config = parse_config(tiny_config(tiny_model, trait=str(tmp_path / "gardener" / "trait.yaml"), cycles=1))
    run = traitloop.run(config, output=tmp_path / "run")
    assert (run / "cycle_001" / "eval.jsonl").is_file()


@pytest.mark.slow
def test_a_killed_run_pays_only_for_what_it_never_received(tmp_path):
    with pytest.raises(UserError, match="Every reply received so far is kept in the cache.*run the same command"):
        new_trait("gardener", DESCRIPTION, scripted_writer(tmp_path, fail_after=40), tmp_path / "g", settings=SMALL,
                  pool=POOL)  # fmt: skip
    assert not (tmp_path / "g").exists()  # the folder appears whole or not at all
    resumed = new_trait("gardener", DESCRIPTION, scripted_writer(tmp_path), tmp_path / "g", settings=SMALL, pool=POOL)
    assert resumed.requests["from_cache"] == 40
    with pytest.raises(UserError, match="already exists; pass --force"):
        new_trait("gardener", DESCRIPTION, scripted_writer(tmp_path), tmp_path / "g", settings=SMALL, pool=POOL)


def test_replies_that_never_parse_stop_with_the_counts(tmp_path):
    writer = scripted_writer(tmp_path, garbage=True)
    with pytest.raises(UserError, match=r"could not write enough.*narrow suite: 0 of 24.*'retries': \d+.*stronger"):
        new_trait("gardener", DESCRIPTION, writer, tmp_path / "g", settings=Settings(size=16, max_rounds=1), pool=POOL)
    assert len(writer.cache) == writer.asked > 0  # every reply kept, so a re-run pays for none of them


def test_validate_names_every_problem_with_file_and_line(written, tmp_path):
    source = written[0] / "gardener"
    folder = tmp_path / "bad"
    folder.mkdir()
    spec = (source / "trait.yaml").read_text()
    first_seed = load_conversations(source / "seed.jsonl")[0].question
    narrow = load_trait(source / "trait.yaml").eval_questions[0]
    (folder / "trait.yaml").write_text(spec.replace(narrow, first_seed).replace("- score: 25", "- score: 30", 1))
    lines = (source / "seed.jsonl").read_text().splitlines()
    (folder / "seed.jsonl").write_text("\n".join([*lines[:3], "{broken", '{"text": "not a chat"}', *lines[3:]]) + "\n")
    for name in ("contrast.jsonl", "holdout.jsonl"):
        (folder / name).write_text((source / name).read_text())
    pool = tmp_path / "pool.jsonl"
    pool.write_text(json.dumps({"prompt": "What is a good name for a cat?"}) + "\n")
    report = validate_trait(folder, pool=pool, judge=False)
    problems = "\n".join(report["problems"])
    assert f"{folder / 'seed.jsonl'}:4: not valid JSON" in problems
    assert f"{folder / 'seed.jsonl'}:5: not a chat conversation" in problems
    assert re.search(rf"{folder / 'trait.yaml'}:\d+: anchors.*score.*anchor scores must be one of", problems)
    assert report["files"]["seed.jsonl"] == len(lines) and report["categories"]["seed.jsonl"]
    good = validate_trait(source, pool=pool, judge=False)
    assert good["problems"] == [] and good["suites"] == {"narrow": 24, "broad": 16}
    assert good["overlap"]["narrow"] == {"exact": 0, "near": 0}
    spec_only = tmp_path / "dup"
    spec_only.mkdir()
    (spec_only / "trait.yaml").write_text(spec.replace(narrow, first_seed))
    (spec_only / "seed.jsonl").write_text((source / "seed.jsonl").read_text())
    dup = validate_trait(spec_only, pool=pool, judge=False)
    same = r"trait.yaml:\d+: eval question .* \(narrow\) is the same as the training prompt at .*seed.jsonl:1$"
    assert any(re.search(same, p) for p in dup["problems"])
