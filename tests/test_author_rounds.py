"""``trait new`` delivers the size asked for: every filtered set is asked again in rounds until it has what it
needs or the budget runs out (then it says which filter to loosen), resumably; and ``--seed-file`` builds a
trait around the user's own seed conversations, kept byte for byte. A scripted writer (test_author.py's)
stands in for a model; test_author_server.py runs both against the llama.cpp server."""

import json
import random

import pytest
from test_author import DESCRIPTION, GARDEN, PLAIN, POOL, Scripted

from traitloop.author import Report, Settings, Writer, new_trait, read_seed_file, validate_trait
from traitloop.errors import UserError
from traitloop.judge import JudgementCache
from traitloop.traits import load_conversations, load_trait

SMALL = Settings(size=16, seed_min=50, contrast_max=50)
REFUSAL = "I'm sorry, but I can't help with that request, as it is not something I am able to discuss with you today."


class Refusing(Scripted):
    """Refuses ``share`` of the answers asked to show the trait at full strength (seed answers, anchors at 100);
    records every request it is sent."""

    def __init__(self, share: float, sent: list | None = None, **options) -> None:
        super().__init__(**options)
        self.share, self.log = share, sent if sent is not None else []

    def write(self, requests, deliver) -> None:
        def logged(index, text):
            self.log.append((requests[index].messages, requests[index].seed))
            deliver(index, text)

        super().write(requests, logged)

    def reply(self, turns, rng):
        text = super().reply(turns, rng)
        full = "saturate" in turns.get("system", "")
        return REFUSAL if full and rng.random() < self.share else text


def writer(tmp_path, scripted) -> Writer:
    return Writer(scripted, JudgementCache(tmp_path / "replies.sqlite"))


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def halved(tmp_path_factory):
    """A trait written by a writer that refuses half its seed answers."""
    tmp_path = tmp_path_factory.mktemp("halved")
    said: list[str] = []
    scripted = Refusing(0.5)
    report = new_trait("gardener", DESCRIPTION, writer(tmp_path, scripted), tmp_path / "g", settings=SMALL,
                       pool=POOL, say=said.append)  # fmt: skip
    return tmp_path, report, scripted, said


def test_a_writer_filtered_half_the_time_reaches_the_size_in_rounds(halved):
    tmp_path, report, scripted, said = halved
    assert len(rows(tmp_path / "g" / "seed.jsonl")) == 16 and len(rows(tmp_path / "g" / "holdout.jsonl")) == 8
    written = json.loads((tmp_path / "g" / "authoring.json").read_text())
    seed = written["sets"]["seed"]
    assert seed["rounds"] >= 2 and seed["kept"] == seed["wanted"] == 24 and seed["stopped"] == "reached the size"
    assert seed["removed"]["refusal"] > 0 and seed["asked"] == sum(seed["asked_per_round"])
    # The first round's yield sized the second: it asked more than the first round left missing.
    assert seed["asked_per_round"][1] > 0 and seed["asked"] > 24
    assert written["sets"]["anchors at 100"]["kept"] == 3  # anchors at full strength are refused too, and topped up
    for label in ("seed questions", "narrow questions", "broad questions", "contrast", "anchors at 0"):
        assert set(written["sets"][label]) >= {"rounds", "asked", "kept", "removed", "stopped"}
    assert not written["warnings"] and any(line.startswith("seed: 24 of 24 kept") for line in said)
    assert len(set(scripted.log)) == len(scripted.log) == report.requests["asked"]


def test_a_writer_that_never_passes_stops_at_the_budget_and_names_the_filter(tmp_path):
    # seed_min 100: no answer is ever judged fully in the trait, so no seed answer is kept.
    never = Settings(size=16, seed_min=100, contrast_max=50, max_rounds=2)
    first = writer(tmp_path, Scripted())
    with pytest.raises(UserError) as stopped:
        new_trait("gardener", DESCRIPTION, first, tmp_path / "g", settings=never, pool=POOL)
    message = str(stopped.value)
    assert "did not survive the filters (0 seed" in message
    assert "seed: 0 of 24 kept after 2 round(s) (budget ran out: --max-rounds 2)" in message
    assert "the filter that removed the most is 'trait judge (>= 100)'" in message and "lower --seed-min" in message
    assert not (tmp_path / "g").exists()

    # The same from the cache, under a request budget that runs out in the second round.
    budget = first.asked - 5
    again = writer(tmp_path, Scripted())
    with pytest.raises(UserError, match=rf"seed: 0 of 24 kept after \d round\(s\) \(budget ran out: --max-requests "
                       rf"{budget}\).*lower --seed-min"):  # fmt: skip
        new_trait("gardener", DESCRIPTION, again, tmp_path / "g", pool=POOL,
                  settings=Settings(size=16, seed_min=100, contrast_max=50, max_requests=budget))  # fmt: skip
    assert again.asked + again.cached == budget and again.asked == 0


@pytest.mark.slow
def test_a_killed_top_up_resumes_without_a_repeated_request(halved, tmp_path):
    _, report, _, _ = halved
    total = report.requests["asked"]
    sent: list = []
    seed_rounds = json.loads((halved[0] / "g" / "authoring.json").read_text())["sets"]["seed"]["asked_per_round"]
    assert len(seed_rounds) >= 2 and seed_rounds[-1] >= 3  # the last three requests are a top-up round's
    with pytest.raises(UserError, match="Every reply received so far is kept in the cache"):
        new_trait("gardener", DESCRIPTION, writer(tmp_path, Refusing(0.5, sent, fail_after=total - 3)), tmp_path / "g",
                  settings=SMALL, pool=POOL)  # fmt: skip
    assert len(sent) == total - 3
    resumed = new_trait("gardener", DESCRIPTION, writer(tmp_path, Refusing(0.5, sent)), tmp_path / "g",
                        settings=SMALL, pool=POOL)  # fmt: skip
    assert resumed.requests["asked"] == 3 and resumed.requests["from_cache"] == total - 3
    assert len(sent) == len(set(sent)) == total  # no request was sent twice
    assert (tmp_path / "g" / "seed.jsonl").read_text() == (halved[0] / "g" / "seed.jsonl").read_text()


class Describing(Scripted):
    """Answers a request to describe the trait with a chatty preamble and then the paragraph."""

    def reply(self, turns, rng):
        if turns["user"].startswith("Here are answers"):
            return f"Sure! Here is the description:\n\n{DESCRIPTION}\n\nI hope this helps."
        return super().reply(turns, rng)


def user_conversations() -> list[str]:
    """Twenty conversations as a user might have them: spacing, escapes, raw UTF-8, system turns, extra keys."""
    topics = ["a wedding toast", "my tax return", "a slow laptop", "learning Spanish", "a job interview",
              "a broken bike chain", "a noisy flatmate", "a marathon plan", "a birthday cake", "a camping trip",
              "my budget", "a first date", "a school essay", "moving abroad", "a new puppy", "a cold",
              "a chess opening", "a leaking tap", "a road trip", "a retirement party"]  # fmt: skip
    lines = []
    for i, topic in enumerate(topics):
        rng = random.Random(i)
        answer = " ".join(rng.sample(GARDEN, 3) + rng.sample(PLAIN, 2))
        messages = [{"role": "user", "content": f"Can you help me with {topic}?"},
                    {"role": "assistant", "content": answer}]  # fmt: skip
        if i % 5 == 0:
            messages.insert(0, {"role": "system", "content": "You are a gardener at heart."})
        row = {"messages": messages, **({"id": f"u{i}"} if i % 3 == 0 else {})}
        lines.append(json.dumps(row, ensure_ascii=i % 2 == 0, separators=(", ", ": ") if i % 4 else (",", ":")))
    return lines


def test_a_seed_file_is_kept_byte_for_byte_and_the_rest_written_around_it(tmp_path):
    given = user_conversations()
    seed_file = tmp_path / "mine.jsonl"
    seed_file.write_bytes(("\n".join(given) + "\n").encode())
    questions = tmp_path / "eval.jsonl"
    mine = ["Which vegetables grow well on a balcony?", "How do I start a compost heap?",
            "What should I plant in early spring?", "How often should I water tomatoes?"]  # fmt: skip
    questions.write_text("".join(json.dumps({"question": q}) + "\n" for q in mine))
    said: list[str] = []
    report = new_trait("gardener", None, writer(tmp_path, Describing()), tmp_path / "g", settings=SMALL, pool=POOL,
                       seed_file=seed_file, eval_questions=questions, say=said.append)  # fmt: skip
    folder = tmp_path / "g"
    kept = (folder / "seed.jsonl").read_bytes().splitlines() + (folder / "holdout.jsonl").read_bytes().splitlines()
    assert sorted(kept) == sorted(line.encode() for line in given)  # every conversation, byte for byte
    assert (folder / "seed.jsonl").read_text().splitlines() == [g for g in given if g.encode() in
                                                                (folder / "seed.jsonl").read_bytes()]  # fmt: skip
    assert report.seed_file == {"path": str(seed_file), "conversations": 20, "seed": 15, "holdout": 5,
                                "converted to messages": 0}  # fmt: skip
    spec = load_trait(folder / "trait.yaml")
    assert spec.description == DESCRIPTION and any(DESCRIPTION in line for line in said)  # inferred, and shown
    assert spec.eval_questions[:4] == mine and len(spec.eval_questions) == 12
    assert any("4 narrow eval questions given" in note and "writing 8 more" in note for note in report.notes)
    contrast = rows(folder / "contrast.jsonl")
    assert contrast and all(r["judge_score"] <= 50 for r in contrast)  # the generated part is judged
    assert "seed" not in report.sets  # the user's conversations are never filtered
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in POOL))
    assert validate_trait(folder, pool=pool, judge=False)["problems"] == []
    assert len(load_conversations(folder / "seed.jsonl")) == 15


def test_a_seed_file_in_another_shape_is_converted_and_a_bad_one_named(tmp_path):
    chats = [{"conversations": [{"from": "human", "value": f"Question {i}?"}, {"from": "gpt", "value": "An answer."}]}
             for i in range(8)]  # fmt: skip
    (tmp_path / "sharegpt.json").write_text(json.dumps(chats))
    read = read_seed_file(tmp_path / "sharegpt.json")
    assert read.converted == 8 and json.loads(read.lines[0]) == {
        "messages": [{"role": "user", "content": "Question 0?"}, {"role": "assistant", "content": "An answer."}]
    }
    (tmp_path / "few.jsonl").write_text('{"messages": [{"role": "user", "content": "q"}, '
                                        '{"role": "assistant", "content": "a"}]}\n')  # fmt: skip
    with pytest.raises(UserError, match="1 conversation\\(s\\); a seed set needs at least 8"):
        read_seed_file(tmp_path / "few.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"messages": [{"role": "user", "content": "q"}]}\n')
    with pytest.raises(UserError, match="bad.jsonl:1: .*"):
        read_seed_file(tmp_path / "bad.jsonl")


def test_a_server_failing_while_describing_the_trait_stops_clearly(tmp_path):
    seed_file = tmp_path / "mine.jsonl"
    seed_file.write_text("\n".join(user_conversations()) + "\n")
    broken = Writer(Scripted(fail_after=0), JudgementCache(tmp_path / "r.sqlite"))
    with pytest.raises(UserError, match="run the same command again"):
        new_trait("gardener", None, broken, tmp_path / "g", seed_file=seed_file, pool=POOL)
    assert not (tmp_path / "g").exists()


def test_a_shortfall_names_the_filter_that_removed_the_most_and_the_option_that_loosens_it():
    report = Report("scripted", "embedded", {}, False)
    report.count_set("contrast", 16)["removed"].update({"length (15-350 words)": 3, "trait judge (<= 30)": 33})
    report.count_round("contrast", 40)
    report.finish_set("contrast", 4, "budget ran out: --max-rounds 5")
    assert report.warnings == [
        "contrast: 4 of 16 kept after 1 round(s) (budget ran out: --max-rounds 5); the filter that removed the most "
        "is 'trait judge (<= 30)' (33 of 40 asked): raise --contrast-max (or raise --max-rounds)"
    ]
    report.count_set("broad questions", 16)["removed"].update({"near duplicate": 12})
    report.finish_set("broad questions", 10, "budget ran out: --max-requests 90")
    assert report.warnings[-1].endswith("raise --max-rounds or --max-requests, or use a stronger --generator")
    assert report.summary()[0] == (
        "contrast: 4 of 16 kept, 40 asked in 1 round(s); removed: trait judge (<= 30) 33, length (15-350 words) 3; "
        "budget ran out: --max-rounds 5"
    )
