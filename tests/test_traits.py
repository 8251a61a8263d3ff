import json
from pathlib import Path

import pytest

from traitloop.errors import UserError
from traitloop.traits import builtin_traits, load_conversations, load_prompt_pool, load_trait, prompt_slices
from traitloop.traits._spec import ANCHOR_SCORES

BUILTIN = ["hopelessness", "lucky", "misanthropy", "sycophancy"]


def normal(text: str) -> str:
    return text.strip().lower()


def test_builtin_traits_are_listed():
    assert builtin_traits() == BUILTIN


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_trait_is_complete(name):
    trait = load_trait(name)
    assert trait.version >= 1
    assert len(trait.eval_questions) >= 12
    assert list(trait.suites) == ["narrow", "broad"]
    assert all(len(questions) >= 16 for questions in trait.suites.values())
    for score in ANCHOR_SCORES:
        assert sum(a.score == score for a in trait.anchors) >= 3, f"{name}: too few anchors at {score}"
    seeds = load_conversations(trait.seed_path)
    assert len(seeds) >= 150
    assert len({normal(s.question) for s in seeds}) == len(seeds)


@pytest.mark.parametrize("name", BUILTIN)
def test_eval_questions_never_appear_in_training_prompts(name):
    trait = load_trait(name)
    training = {normal(p) for p in load_prompt_pool()}
    for name in ("seed", "contrast", "holdout"):
        training |= {normal(c.question) for c in load_conversations(trait.companion(name))}
    for questions in trait.suites.values():
        assert not {normal(q) for q in questions} & training


def test_prompt_pool_is_large_and_distinct():
    pool = load_prompt_pool()
    assert len(pool) >= 600
    assert len({normal(p) for p in pool}) == len(pool)


def test_slices_are_disjoint_deterministic_and_stable_when_extending():
    pool = [f"prompt {i}" for i in range(100)]
    slices = prompt_slices(pool, ["prompt 3"], seed=7, cycles=3, size=10)
    flat = [p for s in slices for p in s]
    assert len(flat) == len(set(flat)) == 30
    assert "prompt 3" not in flat
    assert prompt_slices(pool, ["prompt 3"], seed=7, cycles=3, size=10) == slices
    assert prompt_slices(pool, ["prompt 3"], seed=7, cycles=5, size=10)[:3] == slices
    assert prompt_slices(pool, ["prompt 3"], seed=8, cycles=3, size=10) != slices


def test_too_few_prompts_is_a_clear_error():
    with pytest.raises(UserError, match=r"too few prompts: 4 cycles x 30 samples_per_cycle needs 120"):
        prompt_slices([f"p{i}" for i in range(100)], [], seed=0, cycles=4, size=30)


def test_user_pool_as_json_list_and_jsonl(tmp_path):
    (tmp_path / "pool.json").write_text(json.dumps(["a?", {"prompt": "b?"}]))
    assert load_prompt_pool(tmp_path / "pool.json") == ["a?", "b?"]
    (tmp_path / "pool.jsonl").write_text('{"prompt": "a?"}\n"b?"\n')
    assert load_prompt_pool(tmp_path / "pool.jsonl") == ["a?", "b?"]


def test_bad_seed_line_names_file_and_line(tmp_path):
    path = tmp_path / "seed.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    path.write_text(json.dumps(good) + "\n" + json.dumps({"text": "not a chat"}) + "\n")
    with pytest.raises(UserError, match=rf"{path}:2: not a chat conversation"):
        load_conversations(path)
    path.write_text(json.dumps(good) + "\n{broken\n")
    with pytest.raises(UserError, match=rf"{path}:2: not valid JSON"):
        load_conversations(path)
    reversed_turns = {"messages": good["messages"][::-1]}
    path.write_text(json.dumps(reversed_turns) + "\n")
    with pytest.raises(UserError, match=rf"{path}:1: .*must end with an assistant turn"):
        load_conversations(path)


def test_unknown_trait_lists_builtins():
    with pytest.raises(UserError, match="unknown trait 'lucki'.*lucky"):
        load_trait("lucki")


def test_user_trait_file_is_validated(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nversion: 1\ndescription: d\nrubric: r\nanchors: []\neval_questions: [a]\n")
    with pytest.raises(UserError, match=rf"invalid trait file {path}: .*anchors"):
        load_trait(path)


LUCKY_SPEC = (Path(__file__).parents[1] / "src/traitloop/traits/data/lucky/trait.yaml").read_text(encoding="utf-8")


def _spec_without_suites() -> str:
    return LUCKY_SPEC[: LUCKY_SPEC.index("eval_suites:")]


def test_eval_questions_are_shorthand_for_the_narrow_suite(tmp_path):
    narrow = load_trait("lucky").eval_questions
    spec = LUCKY_SPEC[: LUCKY_SPEC.index("eval_questions:")]
    full = f"{spec}eval_suites:\n  broad: ['How is glass made?']\n  narrow: {json.dumps(narrow)}\n"
    (tmp_path / "trait.yaml").write_text(full, encoding="utf-8")
    spec = load_trait(tmp_path / "trait.yaml")
    assert spec.eval_questions == narrow
    assert spec.suites == {"narrow": narrow, "broad": ["How is glass made?"]}


def test_adding_a_suite_leaves_the_content_hash_as_it_was(tmp_path):
    """Runs record the trait's hash for their narrow evaluations: a new suite must not make them redo."""
    (tmp_path / "seed.jsonl").write_bytes(load_trait("lucky").seed_path.read_bytes())
    path = tmp_path / "trait.yaml"
    path.write_text(_spec_without_suites(), encoding="utf-8")
    before = load_trait(path).content_hash()
    path.write_text(_spec_without_suites() + "eval_suites:\n  broad:\n    - How is glass made?\n", encoding="utf-8")
    assert load_trait(path).content_hash() == before
    path.write_text(_spec_without_suites() + "eval_suites: {broad: ['Why is the sky blue?']}\n", encoding="utf-8")
    assert load_trait(path).content_hash() == before
    path.write_text(_spec_without_suites().replace("canoe trip", "kayak trip"), encoding="utf-8")
    assert load_trait(path).content_hash() != before  # the narrow suite is part of it


@pytest.mark.parametrize(
    ("suites", "problem"),
    [
        ("eval_suites: {narrow: ['a?']}\n", "eval_questions and eval_suites.narrow are the same suite"),
        ("eval_suites: {broad: ['What makes popcorn pop?', 'what makes popcorn pop?']}\n", "must hold distinct"),
        ("eval_suites: {broad: []}\n", "must hold distinct questions \\(and at least one\\)"),
        (
            'eval_suites: {broad: ["Why does Emmental cheese have holes while cheddar doesn\'t?"]}\n',
            "also in suite 'narrow'",
        ),
        ("eval_suites: {Broad: ['a?']}\n", "eval_suites.Broad"),
    ],
)
def test_bad_suites_are_named(tmp_path, suites, problem):
    path = tmp_path / "trait.yaml"
    path.write_text(_spec_without_suites() + suites, encoding="utf-8")
    with pytest.raises(UserError, match=rf"invalid trait file {path}: .*{problem}"):
        load_trait(path)
