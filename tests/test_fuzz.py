"""A bad-input campaign: fuzzed configs, trait folders, data files and judge replies.

Every case ends in a named error (a ``UserError`` whose message names the file, field or line at fault) or
a correct result, never another exception; a ``traitloop run`` that fails on bad input leaves an existing
run folder byte for byte as it was. Data files are checked against a small reference reader written here,
so "correct result" means the right rows and "named error" the first bad line. No model is loaded: the
run stops at the model lookup, after every input has been read. Cases per target are counted and printed.
"""

from __future__ import annotations

import json
import math
import shutil
import typing
from collections import Counter
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from synthetic_runs import write_run
from typer.testing import CliRunner

from traitloop import api
from traitloop._http import HttpClient
from traitloop.api import load_config, parse_config
from traitloop.cli import app
from traitloop.config import ExperimentConfig, apply_overrides, config_to_dict
from traitloop.errors import UserError
from traitloop.judge import Item
from traitloop.judge._cache import JudgementCache
from traitloop.judge._openai import OpenAIJudge, digit_split_from_probe
from traitloop.judge._scoring import (
    digit_tree_numbers,
    parse_reply,
    sampled_score,
    score_from_numbers,
    weighted_score,
)
from traitloop.loop import _engine
from traitloop.traits import load_conversations, load_documents, load_prompt_pool, load_trait
from traitloop.traits._spec import ANCHOR_SCORES, DATA_DIR


def fuzz(examples: int):
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


CASES: Counter[str] = Counter()
ERRORS: Counter[str] = Counter()  # of the cases, those that ended in a named error
TARGETS = ("configs", "cli", "trait folders", "data files", "judge replies", "run folder kept")


@pytest.fixture(scope="module", autouse=True)
def _count_cases(request: pytest.FixtureRequest):
    yield
    total = sum(CASES.values())
    counts = ", ".join(f"{target} {CASES[target]} ({ERRORS[target]} named errors)" for target in TARGETS)
    line = f"fuzz cases: {counts}; total {total}"
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write(f"\n{line}\n")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def named(call, *names: str, target: str) -> Any:
    """``call()``'s result, or its ``UserError`` after checking the message names each of ``names``."""
    CASES[target] += 1
    try:
        return call()
    except UserError as error:
        ERRORS[target] += 1
        message = str(error)
        assert message.strip() and "Traceback" not in message
        for name in names:
            assert name in message, f"{name!r} not named in: {message}"
        return error


# -- values a user might write anywhere ------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-10, max_value=100),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        ["", " ", "lucky", "dpo", "sdf", "continual", "all-linear", "wandb", "openai", "http://h:1/v1", "1e3", "~"]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
PLAUSIBLE = st.one_of(  # values of the right kind, often in range: the cases that must be taken as given
    st.integers(0, 16), st.floats(0.0, 1.0), st.booleans(), st.sampled_from(["reinit", "sdf", "all-linear", "x"])
)
LINE_TEXT = st.text(st.characters(exclude_characters="\r\n", exclude_categories=("Cs",)), max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | LINE_TEXT,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["messages", "role", "content", "prompt", "text", "title"]) | LINE_TEXT, inner
        )
    ),
    max_leaves=8,
)


# -- configs -------------------------------------------------------------------------------------------

BASE_CONFIG = {"trait": "lucky", "cycles": 2, "seed_examples": 8, "samples_per_cycle": 6}


def _sections(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Every field path of the config (``training.lora.r``) with its annotation."""
    paths: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        paths[path] = field.annotation
        for inner in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                paths.update(_sections(inner, f"{path}."))
    return paths


FIELDS = _sections(ExperimentConfig)
NUMBERS = (int, float, int | None, float | None)


def _set(data: dict, path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        if not isinstance(data.get(part), dict):
            data[part] = {}
        data = data[part]
    data[leaf] = value


def _get(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data[part]
    return data


def _mutate(data: dict, mutations: list[tuple[str, str, Any]]) -> list[str]:
    """Apply (set | delete | unknown) mutations to a raw config; returns the field paths touched."""
    touched = []
    for op, path, value in mutations:
        if op == "set":
            _set(data, path, value)
        elif op == "delete":
            data.pop(path, None)
        else:
            path = path + value
            _set(data, path, 1)
        touched.append(path)
    return touched


def _numbers_kept(config: ExperimentConfig, given: dict[str, Any]) -> None:
    """A number field that was accepted holds the number given: never a boolean, NaN or infinity taken."""
    dumped = config_to_dict(config)
    for path, value in given.items():
        if FIELDS.get(path) not in NUMBERS or not isinstance(value, bool | int | float):
            continue
        assert not isinstance(value, bool), f"{path}: {value} taken as a number"
        assert math.isfinite(value) and _get(dumped, path) == value, f"{path}: {value!r} became {_get(dumped, path)!r}"


MUTATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from(sorted(FIELDS)), VALUES | PLAUSIBLE | PLAUSIBLE),
        st.tuples(st.just("delete"), st.sampled_from(["trait", "cycles", "seed_examples"]), st.none()),
        st.tuples(
            st.just("unknown"), st.sampled_from(["", "training.", "generation.", "judge.trait."]), st.text(max_size=8)
        ),
    ),
    min_size=1,
    max_size=3,
)


@fuzz(150)
@given(mutations=MUTATIONS)
def test_mutated_configs_are_named_errors_or_the_values_given(work, mutations):
    data = json.loads(json.dumps(BASE_CONFIG))
    touched = _mutate(data, mutations)
    config_file = work / "mutated.yaml"
    config_file.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    result = named(lambda: load_config(config_file), str(config_file), target="configs")
    if isinstance(result, UserError):
        parts = {part for path in touched for part in path.split(".") if part}
        parts |= {
            f"unknown field '{path}'" for (op, *_), path in zip(mutations, touched, strict=True) if op == "unknown"
        }
        assert any(part in str(result) for part in parts), f"none of {parts} named in: {result}"
        return
    assert parse_config(config_to_dict(result)) == result  # what a run saves loads back the same
    final = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    given = {}
    for path in touched:
        try:
            given[path] = _get(final, path)
        except (KeyError, TypeError):
            continue  # a later mutation replaced it
    _numbers_kept(result, given)


@fuzz(60)
@given(data=st.text(max_size=200).map(str.encode) | st.binary(max_size=200))
def test_garbage_yaml_is_a_named_error(work, data):
    config_file = work / "garbage.yaml"
    config_file.write_bytes(data)
    result = named(lambda: load_config(config_file), str(config_file), target="configs")
    assert isinstance(result, UserError | ExperimentConfig)


@fuzz(30)
@given(value=st.lists(VALUES, max_size=3) | SCALARS.filter(lambda v: v is not None))
def test_a_config_that_is_not_a_mapping_is_a_named_error(work, value):
    config_file = work / "scalar.yaml"
    config_file.write_text(yaml.safe_dump(value, allow_unicode=True), encoding="utf-8")
    result = named(lambda: load_config(config_file), str(config_file), "mapping", target="configs")
    assert isinstance(result, UserError)


LAUGHS = "a: &a [x, x, x, x, x, x, x, x]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 8)}]\n" for prev, name in zip("abcdefg", "bcdefgh", strict=True)
)
STRUCTURAL = {
    "deep nesting": ("trait: lucky\nname: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    "an alias bomb under a string field": (LAUGHS + "trait: lucky\nname: *h\n", "name"),
    "an alias bomb under a list field": (LAUGHS + "trait: lucky\nreport_to: *h\n", "report_to"),
    "a recursive alias": ("trait: lucky\nname: &r [*r]\n", "name"),
    "a duplicate key": ("trait: lucky\ncycles: 2\ncycles: 3\n", "duplicate key 'cycles'"),
    "a duplicate nested key": ("trait: lucky\ntraining:\n  epochs: 1\n  epochs: 2\n", ":4:"),
    "a python tag": ("trait: !!python/object/apply:os.system [echo]\n", "bad YAML"),
    "a NUL byte": ("trait: lucky\x00\n", "bad YAML"),
    "two documents": ("trait: lucky\n---\ntrait: lucky\n", "bad YAML"),
    "tab indentation": ("training:\n\tepochs: 2\n", "bad YAML"),
    "an unhashable key": ("? [a, b]\n: 1\ntrait: lucky\n", "bad YAML"),
    "comments only": ("# nothing here\n", "trait"),
    "a date for a name": ("trait: lucky\nname: 2024-01-01\n", "name"),
    "yes for a number": ("trait: lucky\ncycles: yes\n", "cycles"),
    "infinity for a learning rate": ("trait: lucky\ntraining: {learning_rate: .inf}\n", "learning_rate"),
    "a negative seed": ("trait: lucky\nseed: -1\n", "seed"),
    "a seed numpy cannot take": ("trait: lucky\nseed: 4294967296\n", "seed"),
    "no target modules": ("trait: lucky\ntraining: {lora: {target_modules: []}}\n", "target_modules"),
    "a server url without a scheme": (
        "trait: lucky\njudge: {trait: {kind: openai, model: m, base_url: 'localhost:8000/v1'}}\n",
        "base_url",
    ),
}


@pytest.mark.parametrize("case", sorted(STRUCTURAL))
def test_structurally_bad_yaml_is_a_named_error(work, case):
    text, name = STRUCTURAL[case]
    config_file = work / "structural.yaml"
    config_file.write_text(text, encoding="utf-8")
    assert isinstance(named(lambda: load_config(config_file), str(config_file), name, target="configs"), UserError)


def test_non_utf8_and_bom_config_files(work):
    config_file = work / "encoding.yaml"
    config_file.write_bytes(b"trait: lucky\nname: caf\xe9\n")
    assert isinstance(named(lambda: load_config(config_file), f"{config_file}:2", "UTF-8", target="configs"), UserError)
    config_file.write_bytes("\ufefftrait: lucky\n".encode())
    assert named(lambda: load_config(config_file), target="configs").trait == "lucky"


OVERRIDES = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(sorted(FIELDS)), st.text(max_size=12)),
    st.builds(lambda k, v: f"{k}={v}", st.text(max_size=12), st.text(max_size=12)),
    st.text(max_size=20),
    st.sampled_from(["=1", "cycles", "cycles=", "cycles.x=1", "training..epochs=1", " =2", "a=b=c", "trait=[1"]),
)


@fuzz(80)
@given(overrides=st.lists(OVERRIDES, min_size=1, max_size=3))
def test_bad_set_overrides_are_named_errors_or_the_values_given(overrides):
    result = named(lambda: load_config(None, ["trait=lucky", *overrides]), target="configs")
    if isinstance(result, UserError):
        keys = {p for o in overrides for p in o.partition("=")[0].strip().split(".") if p} | {"--set"}
        assert any(key in str(result) for key in keys), f"none of {keys} named in: {result}"
        return
    _numbers_kept(result, {k: _get(v, k) for k, v in [(o.partition("=")[0].strip(), _yaml_of(o)) for o in overrides]})


def _yaml_of(override: str) -> dict:
    """The raw config one override makes, for reading back the value it gave."""
    return apply_overrides({}, [override])


# -- the command line ------------------------------------------------------------------------------------

CLI_CASES = [
    ("trait: lucky\ncylces: 2\n", [], "cylces"),
    ("trait: lucky\ncycles: [2\n", [], "bad YAML"),
    ("[1, 2]\n", [], "mapping"),
    ("trait: lucky\ncycles: 2\ncycles: 3\n", [], "duplicate key"),
    ("trait: lucky\ntraining: {epochs: .inf}\n", [], "training.epochs"),
    ("trait: lucky\n", ["--set", "cycles"], "KEY=VALUE"),
    ("trait: lucky\n", ["--set", "training.batch_size=-3"], "training.batch_size"),
    ("trait: lucky\nseed_file: seeds.jsonl\n", [], "seeds.jsonl:2"),
    ("trait: lucky\nprompt_pool: pool.json\n", [], "pool.json"),
]


@pytest.mark.parametrize(("text", "options", "name"), CLI_CASES)
def test_cli_run_on_bad_input_prints_one_error_and_keeps_the_run_folder(work, run_folder, text, options, name):
    (work / "seeds.jsonl").write_bytes(_conversation_line("q", "a") + b"\n\xff\xfe\n")
    (work / "pool.json").write_text('["one", 2]')
    config_file = work / "cli.yaml"
    config_file.write_text(text)
    before = _snapshot(run_folder)
    CASES["cli"] += 1
    ERRORS["cli"] += 1  # each one must fail, as asserted below
    with mock.patch.object(_engine, "resolve_model", side_effect=AssertionError("reached model work")):
        result = CliRunner().invoke(app, ["run", str(config_file), "--output", str(run_folder), *options])
    output = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, AssertionError)
    assert output.count("error:") == 1 or "Usage:" in output, result.output  # typer's own usage errors
    assert name.replace(" ", "") in "".join(output.split()), result.output  # rich may fold a long path anywhere
    assert _snapshot(run_folder) == before


# -- trait folders ---------------------------------------------------------------------------------------

LUCKY = yaml.safe_load((DATA_DIR / "lucky" / "trait.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def trait_folder(work: Path) -> Path:
    folder = work / "trait"
    shutil.copytree(DATA_DIR / "lucky", folder)
    return folder


def _trait_accepted_correctly(spec, data: dict) -> None:
    """An accepted trait is what the file says, and it is usable: every level anchored, >= 12 questions."""
    assert spec.name == data["name"] and spec.version == data["version"] and not isinstance(data["version"], bool)
    assert {a.score for a in spec.anchors} >= set(ANCHOR_SCORES)
    assert len(spec.eval_questions) >= 12 and all(q.strip() for q in spec.eval_questions)
    assert spec.description.strip() and spec.rubric.strip()


TRAIT_NAMES = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)
TRAIT_MUTATIONS = st.one_of(
    st.tuples(st.just("set"), st.sampled_from([*LUCKY, "path", "extra"]), VALUES),
    st.tuples(st.just("set"), st.sampled_from(["name", "rubric"]), TRAIT_NAMES),
    st.tuples(st.just("set"), st.just("version"), st.integers(-2, 5)),
    st.tuples(st.just("delete"), st.sampled_from(sorted(LUCKY)), st.none()),
    st.tuples(st.just("eval_questions"), st.integers(0, 13), VALUES),
    st.tuples(st.just("anchor"), st.sampled_from(["score", "question", "answer", "extra"]), VALUES),
    st.tuples(st.just("drop level"), st.sampled_from(ANCHOR_SCORES), st.none()),
    st.tuples(st.just("duplicate question"), st.none(), st.none()),
)


@fuzz(100)
@given(mutations=st.lists(TRAIT_MUTATIONS, min_size=1, max_size=2), index=st.integers(0, 100))
def test_mutated_trait_files_are_named_errors_or_usable_traits(trait_folder, mutations, index):
    data = json.loads(json.dumps(LUCKY))
    keys = set()
    for op, key, value in mutations:
        if op == "set":
            data[key] = value
        elif op == "delete":
            data.pop(key, None)
        elif op == "eval_questions" and isinstance(data.get("eval_questions"), list):
            data["eval_questions"] = data["eval_questions"][:key] + ([value] if index % 2 else [])
            key = "eval_questions"
        elif op == "anchor" and isinstance(data.get("anchors"), list) and data["anchors"]:
            anchor = data["anchors"][index % len(data["anchors"])]
            if isinstance(anchor, dict):
                anchor[key] = value
            key = "anchors"
        elif op == "drop level" and isinstance(data.get("anchors"), list):
            data["anchors"] = [a for a in data["anchors"] if not isinstance(a, dict) or a.get("score") != key]
            key = "anchors"
        elif op == "duplicate question" and isinstance(data.get("eval_questions"), list) and data["eval_questions"]:
            first = data["eval_questions"][0]
            data["eval_questions"].append(first.upper() if isinstance(first, str) else first)
            key = "eval_questions"
        keys.add(key)
    path = trait_folder / "trait.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    result = named(lambda: load_trait(path), str(path), target="trait folders")
    if isinstance(result, UserError):
        assert any(str(key) in str(result) for key in keys) or "mapping" in str(result), result
    else:
        _trait_accepted_correctly(result, data)


def _conversation_line(question: str, answer: str) -> bytes:
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return json.dumps({"messages": messages}).encode()


BAD_CONVERSATION_LINES = st.one_of(
    LINE_TEXT.filter(lambda t: t.strip() and not _parses(t)).map(str.encode),
    JSON_VALUES.filter(lambda v: not isinstance(v, dict) or "messages" not in v).map(lambda v: json.dumps(v).encode()),
    st.sampled_from(["", " ", "\t"]).map(lambda c: _conversation_line("q", c)),
    st.sampled_from(["", "  "]).map(lambda c: _conversation_line(c, "a")),
    st.sampled_from([["assistant", "user"], ["user", "user"], ["system", "assistant"], ["user", "bot"], ["user"]]).map(
        lambda roles: json.dumps({"messages": [{"role": r, "content": "x"} for r in roles]}).encode()
    ),
    st.binary(min_size=1, max_size=10).map(lambda b: b"\xff" + b.replace(b"\n", b"") + b"\xfe"),
    st.just(b'{"messages": [{"role": "user", "content": "\\ud800"}, {"role": "assistant", "content": "a"}]}'),
    st.just(b"1" * 5000),
    st.just(b"[" * 5000 + b"]" * 5000),
)


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


@fuzz(80)
@given(name=st.sampled_from(["seed.jsonl", "contrast.jsonl"]), line=BAD_CONVERSATION_LINES, at=st.integers(0, 200))
def test_a_bad_seed_or_contrast_line_names_its_file_and_line(trait_folder, name, line, at):
    (trait_folder / "trait.yaml").write_text(yaml.safe_dump(LUCKY, allow_unicode=True), encoding="utf-8")
    original = (DATA_DIR / "lucky" / name).read_bytes().splitlines()
    at = at % (len(original) + 1)
    path = trait_folder / name
    try:
        path.write_bytes(b"\n".join([*original[:at], line, *original[at:]]) + b"\n")
        result = named(lambda: load_trait(trait_folder / "trait.yaml"), f"{path}:{at + 1}:", target="trait folders")
        assert isinstance(result, UserError)
    finally:
        shutil.copy(DATA_DIR / "lucky" / name, path)


# -- seed files and prompt pools, against a reference reader ---------------------------------------------


def _reference_rows(data: bytes, valid) -> list[Any] | int:
    """The rows of a JSONL file, or the first bad line's number (not UTF-8, not JSON, or not ``valid``);
    lines are split on \\n, and a byte order mark may start the file."""
    rows = []
    for number, raw in enumerate(data.split(b"\n")[: -1 if data.endswith(b"\n") else None], start=1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            return number
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except (ValueError, RecursionError):
            return number
        if not valid(row):
            return number
        rows.append(row)
    return rows


def _check_jsonl(path: Path, result: Any, rows: list[Any] | int, none_found: str) -> bool:
    """Whether ``result`` may be compared with ``rows``; else it must be the error naming the first bad line."""
    if isinstance(rows, list) and rows:
        assert not isinstance(result, UserError), f"{result} on a good file"
        return True
    expected = f"{path}:{rows}:" if isinstance(rows, int) else none_found
    assert isinstance(result, UserError) and expected in str(result), (expected, result)
    return False


def _text_ok(value: Any) -> bool:
    if not isinstance(value, str) or not value.strip():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _valid_conversation(row: Any) -> bool:
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list) or len(row["messages"]) < 2:
        return False
    for message in row["messages"]:
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            return False
        if not _text_ok(message.get("content")):
            return False
    roles = [m["role"] for m in row["messages"]]
    return roles[-1] == "assistant" and "user" in roles[:-1]


def _valid_document(row: Any) -> bool:
    optional = [row.get(k, "") for k in ("type", "topic", "title")] if isinstance(row, dict) else [None]
    return isinstance(row, dict) and _text_ok(row.get("text")) and all(isinstance(v, str) for v in optional)


def _prompt_of(item: Any) -> str | None:
    text = item.get("prompt") if isinstance(item, dict) else item
    return text.strip() if _text_ok(text) else None


def _file_lines(valid: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    line = st.one_of(
        valid,
        valid,
        st.sampled_from([b"", b" ", b"\t", b"\r", b"  \t "]),
        LINE_TEXT.filter(lambda t: t.strip() and not _parses(t)).map(str.encode),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")),
        st.sampled_from([b"NaN", b"1" * 5000, b"[" * 5000 + b"]" * 5000, b"\xef\xbb\xbf{}", b'"\\udc80"']),
    )
    return st.builds(
        lambda bom, lines, crlf, end: (
            (b"\xef\xbb\xbf" if bom else b"") + (b"\r\n" if crlf else b"\n").join(lines) + (b"\n" if end else b"")
        ),
        st.booleans(),
        st.lists(line, max_size=6) | st.lists(st.one_of(valid, st.sampled_from([b"", b" "])), max_size=6),
        st.booleans(),
        st.booleans(),
    )


CONVERSATION_LINES = st.builds(_conversation_line, LINE_TEXT, LINE_TEXT) | st.just(
    _conversation_line("a long question", "luck " * 60_000)
)
DOCUMENT_LINES = st.builds(lambda t, title: json.dumps({"text": t, "title": title}).encode(), LINE_TEXT, VALUES)
PROMPT_LINES = st.one_of(
    LINE_TEXT.map(lambda t: json.dumps(t).encode()),
    st.builds(lambda p: json.dumps({"prompt": p}).encode(), VALUES),
)


@fuzz(70)
@given(data=_file_lines(CONVERSATION_LINES))
def test_seed_files_load_exactly_or_name_the_first_bad_line(work, data):
    path = work / "seeds.jsonl"
    path.write_bytes(data)
    result = named(lambda: load_conversations(path), str(path), target="data files")
    rows = _reference_rows(data, _valid_conversation)
    if _check_jsonl(path, result, rows, "no conversations"):
        assert [c.model_dump() for c in result] == [
            {"messages": [{"role": m["role"], "content": m["content"]} for m in row["messages"]]} for row in rows
        ]


@fuzz(50)
@given(data=_file_lines(DOCUMENT_LINES))
def test_document_files_load_exactly_or_name_the_first_bad_line(work, data):
    path = work / "docs.jsonl"
    path.write_bytes(data)
    result = named(lambda: load_documents(path), str(path), target="data files")
    rows = _reference_rows(data, _valid_document)
    if _check_jsonl(path, result, rows, "no documents"):
        assert [d.text for d in result] == [row["text"] for row in rows]


@fuzz(60)
@given(data=_file_lines(PROMPT_LINES))
def test_jsonl_prompt_pools_load_exactly_or_name_the_first_bad_line(work, data):
    path = work / "pool.jsonl"
    path.write_bytes(data)
    result = named(lambda: load_prompt_pool(path), str(path), target="data files")
    rows = _reference_rows(data, lambda row: _prompt_of(row) is not None)
    if _check_jsonl(path, result, rows, "no prompts"):
        assert result == list(dict.fromkeys(_prompt_of(row) for row in rows))


@fuzz(50)
@given(
    body=st.one_of(
        st.lists(JSON_VALUES | LINE_TEXT, max_size=5).map(json.dumps).map(str.encode),
        JSON_VALUES.map(json.dumps).map(str.encode),
        st.binary(max_size=40),
        st.just(b"[" * 5000 + b"]" * 5000),
        st.just(b'["fine", "\\ud800"]'),
        st.just(b'\xef\xbb\xbf["with a BOM"]'),
    )
)
def test_json_prompt_pools_load_exactly_or_name_the_bad_item(work, body):
    path = work / "pool.json"
    path.write_bytes(body)
    result = named(lambda: load_prompt_pool(path), str(path), target="data files")
    try:
        items = json.loads(body.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        assert isinstance(result, UserError)
        return
    prompts = [_prompt_of(item) for item in items] if isinstance(items, list) else None
    if prompts is None or None in prompts or not prompts:
        assert isinstance(result, UserError)
        if prompts:
            assert f"item {prompts.index(None)}" in str(result), result
        return
    assert result == list(dict.fromkeys(prompts))


def test_odd_data_paths_are_named_errors(work):
    for path in (work, work / ("x" * 300 + ".jsonl"), work / "nul\x00.jsonl", work / "missing.jsonl"):
        for load in (load_conversations, load_documents, load_prompt_pool):
            assert isinstance(named(lambda: load(path), target="data files"), UserError)  # noqa: B023
    (work / "dir.json").mkdir(exist_ok=True)
    assert isinstance(named(lambda: load_prompt_pool(work / "dir.json"), "dir.json", target="data files"), UserError)


# -- judge replies -------------------------------------------------------------------------------------

LOGPROBS = st.one_of(
    st.floats(max_value=0.0),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-1000, 1000),
    st.none(),
    st.booleans(),
    st.text(max_size=4),
)
TOKENS = st.one_of(
    st.sampled_from(["0", "7", "75", " 75", "100", "101", "1", "10", "5.", "٧", "²", "abc", "", " ", "\n"]),
    st.text(max_size=4),
    st.integers(0, 200),
    st.none(),
)
TOP = st.lists(st.tuples(TOKENS, LOGPROBS), max_size=6) | st.lists(  # and well-formed ones, mostly numbers
    st.tuples(st.sampled_from(["0", "25", " 50", "7", "75", "100", "1", "10", "No"]), st.floats(-30.0, 0.0)),
    min_size=1,
    max_size=8,
)


def _replace(node: Any, path: list[str], replacement: Any) -> Any:
    """``node`` with the value at ``path`` replaced (a list is entered at its first item), as a broken
    server or proxy would answer; a path that is not there changes nothing."""
    if isinstance(node, list):
        return [_replace(node[0], path, replacement), *node[1:]] if node else node
    if not path:
        return replacement
    if not isinstance(node, dict) or path[0] not in node:
        return node
    return {**node, path[0]: _replace(node[path[0]], path[1:], replacement)}


REPLY_PATHS = [
    ["choices"],
    ["choices", "message"],
    ["choices", "message", "content"],
    ["choices", "logprobs"],
    ["choices", "logprobs", "content"],
    ["choices", "logprobs", "content", "top_logprobs"],
    ["choices", "logprobs", "top_logprobs"],
    ["choices", "text"],
]
BREAKAGE = st.lists(st.tuples(st.sampled_from(REPLY_PATHS), JSON_VALUES), max_size=2)


def _broken(reply: Any, breakage: list[tuple[list[str], Any]]) -> Any:
    for path, replacement in breakage:
        reply = _replace(reply, path, replacement)
    return reply


def _chat_reply(top, text, breakage):
    entries = [{"token": token, "logprob": logprob} for token, logprob in top]
    reply = {"choices": [{"message": {"content": text}, "logprobs": {"content": [{"top_logprobs": entries}]}}]}
    return _broken(reply, breakage)


def _completion_reply(top, text, breakage):
    return _broken({"choices": [{"text": text, "logprobs": {"top_logprobs": [dict(top)] if top else []}}]}, breakage)


CHAT_REPLIES = st.one_of(
    st.builds(_chat_reply, TOP, st.one_of(st.none(), LINE_TEXT), st.just([])),
    st.builds(_chat_reply, TOP, st.one_of(st.none(), LINE_TEXT, st.integers()), BREAKAGE),
    JSON_VALUES,
)
COMPLETION_REPLIES = st.one_of(
    st.builds(
        _completion_reply,
        st.lists(st.tuples(TOKENS.filter(lambda t: isinstance(t, str)), LOGPROBS), max_size=6),
        st.one_of(LINE_TEXT, st.none(), st.integers()),
        BREAKAGE,
    ),
    JSON_VALUES,
)
SAMPLED_REPLIES = st.one_of(
    st.builds(
        lambda text: {"choices": [{"message": {"content": text}}]},
        st.one_of(LINE_TEXT, st.sampled_from(["75", " 100 ", "42/100", "REFUSAL", "code", "101", "7.5."])),
    ),
    JSON_VALUES,
)


class _FakeTokenizer:
    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return messages[0]["content"]


@pytest.fixture(scope="module")
def judges(work: Path) -> dict[str, Any]:
    """One judge per scoring mode, each answered by a mock server whose next reply the test sets."""
    reply: dict[str, Any] = {}

    def answer(request: httpx.Request) -> httpx.Response:
        body = reply["body"]
        return httpx.Response(200, content=body if isinstance(body, bytes) else json.dumps(body).encode())

    made = {"reply": reply}
    for mode in ("logprobs", "digit-tree", "sampled"):
        client = HttpClient("http://judge/v1", None, 5.0, 0, 1)
        client._client = httpx.Client(transport=httpx.MockTransport(answer))
        cache = JudgementCache(work / f"judge-{mode}.sqlite")
        judge = OpenAIJudge(lambda item: item.answer, "trait/x@v1", "m", "http://judge/v1", client, cache, 1, 3, "t")
        judge.__dict__["facts"] = {"mode": mode}
        judge.__dict__["_tokenizer"] = _FakeTokenizer()
        made[mode] = judge
    return made


def _judge_once(judges, mode: str, body: Any) -> None:
    judges["reply"]["body"] = body
    CASES["judge replies"] += 1
    _judge_once.count = getattr(_judge_once, "count", 0) + 1
    item = Item("How are you?", f"answer {_judge_once.count}")  # a new prompt each time: never a cache hit
    try:
        [judgement] = judges[mode]([item])
    except UserError as error:
        ERRORS["judge replies"] += 1
        assert "judge server" in str(error) and "unreadable reply" in str(error), error
        return
    score = judgement.score
    assert score is None or (isinstance(score, float) and 0.0 <= score <= 100.0), judgement
    assert score is not None or judgement.reason


@fuzz(120)
@given(reply=CHAT_REPLIES)
def test_logprob_replies_give_a_score_none_or_a_named_error(judges, reply):
    _judge_once(judges, "logprobs", reply)


@fuzz(60)
@given(reply=COMPLETION_REPLIES)
def test_digit_tree_replies_give_a_score_none_or_a_named_error(judges, reply):
    _judge_once(judges, "digit-tree", reply)


@fuzz(60)
@given(reply=SAMPLED_REPLIES | st.binary(max_size=30))
def test_sampled_replies_give_a_score_none_or_a_named_error(judges, reply):
    _judge_once(judges, "sampled", reply)


FLOAT_TOP = st.dictionaries(TOKENS.filter(lambda t: isinstance(t, str)), st.floats(allow_nan=True), max_size=8)


@fuzz(150)
@given(first=FLOAT_TOP, after=st.dictionaries(st.sampled_from(["", "1", "7", "10", "5"]), FLOAT_TOP), text=st.text())
def test_scoring_functions_stay_on_the_scale(first, after, text):
    CASES["judge replies"] += 1
    for result in (
        weighted_score(first),
        score_from_numbers(digit_tree_numbers(first, lambda prefix: after.get(prefix, {})), first),
        sampled_score([text, text[:3]]),
    ):
        assert result.score is None or 0.0 <= result.score <= 100.0, result
        assert result.score is not None or result.reason
    value, reason = parse_reply(text)
    assert (value is None) != (reason is None) and (value is None or 0.0 <= value <= 100.0)
    assert digit_split_from_probe([text, *first], list(after)) in (True, False, None)


# -- nothing in a run folder is lost ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_folder(work: Path) -> Path:
    return write_run(work / "existing-run", trait=[20.0, 30.0, 40.0, 50.0])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


BAD_RUN_INPUTS = st.one_of(
    st.tuples(st.just("config"), MUTATIONS.map(lambda m: [*m, ("unknown", "", "zz")])),
    st.tuples(st.just("override"), st.lists(OVERRIDES, min_size=1, max_size=2).map(lambda o: [*o, "cylces=1"])),
    st.tuples(st.just("seed_file"), BAD_CONVERSATION_LINES),
    st.tuples(st.just("prompt_pool"), BAD_CONVERSATION_LINES),
    st.tuples(st.just("contrast"), BAD_CONVERSATION_LINES),
    st.tuples(st.just("trait"), st.integers(0, 11)),
    st.tuples(st.just("sdf documents"), BAD_CONVERSATION_LINES.map(lambda line: b'{"title": "x"}\n' + line)),
)


@fuzz(50)
@given(bad=BAD_RUN_INPUTS, force=st.booleans())
def test_a_run_that_fails_on_bad_input_leaves_the_run_folder_as_it_was(work, run_folder, trait_folder, bad, force):
    kind, detail = bad
    data, overrides = dict(BASE_CONFIG), []
    if kind == "config":
        _mutate(data, detail)
    elif kind == "override":
        overrides = detail
    elif kind in ("seed_file", "prompt_pool", "sdf documents"):
        (work / "bad.jsonl").write_bytes(detail + b"\n")
        data[kind if kind != "sdf documents" else "seed_file"] = str(work / "bad.jsonl")
        data["method"] = "sdf" if kind == "sdf documents" else "sft"
    elif kind == "contrast":
        shutil.copytree(DATA_DIR / "lucky", work / "contrast-trait", dirs_exist_ok=True)
        (work / "contrast-trait" / "contrast.jsonl").write_bytes(detail + b"\n")
        data["trait"] = str(work / "contrast-trait" / "trait.yaml")
    else:
        short = {**LUCKY, "eval_questions": LUCKY["eval_questions"][:detail]}
        (trait_folder / "short.yaml").write_text(yaml.safe_dump(short, allow_unicode=True), encoding="utf-8")
        data["trait"] = str(trait_folder / "short.yaml")
    config_file = work / "run.yaml"
    config_file.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    before = _snapshot(run_folder)
    with mock.patch.object(_engine, "resolve_model", side_effect=AssertionError("reached model work")):
        result = named(
            lambda: api.run(config_file, output=run_folder, overrides=overrides, force=force), target="run folder kept"
        )
    assert isinstance(result, UserError), f"{kind} was accepted"
    assert _snapshot(run_folder) == before


def test_the_campaign_ran_hundreds_of_cases():
    if set(TARGETS) - set(CASES):
        pytest.skip("only part of the campaign ran")
    assert sum(CASES.values()) >= 300, CASES
