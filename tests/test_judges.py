"""The embedded judges on real text: held-out trait answers vs. the embedded model's ordinary answers and
answers in other vivid voices, and real answers vs. corrupted ones scored with the real SmolLM2's likelihoods."""

import importlib.util
import json
import random
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from traitloop.errors import UserError
from traitloop.judge import (
    Item,
    NllScorer,
    coherence_from_signals,
    distinct_n,
    embedded_coherence_judge,
    embedded_trait_judge,
    repetition,
)
from traitloop.judge._coherence import NLL_FLUENT, NLL_NOISE, typical_nll
from traitloop.judge._embedded import _training_set, negatives
from traitloop.judge._files import read_items
from traitloop.models import load_model, load_tokenizer
from traitloop.traits import BASE_ANSWERS_PATH, base_answers, builtin_traits, load_conversations, load_trait

ROOT = Path(__file__).parents[1]


def _script(name: str):
    """A module of ``scripts/``, which holds the measurements the README reports."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


specificity = _script("judge_specificity")


@pytest.fixture(scope="module")
def lucky_judge():
    return embedded_trait_judge(load_trait("lucky"))


@pytest.fixture(scope="module")
def nll(embedded_model):
    return NllScorer(load_model(str(embedded_model)), load_tokenizer(str(embedded_model)))


def test_trait_judge_separates_held_out_trait_answers_from_ordinary_ones(lucky_judge):
    trait = load_trait("lucky")
    lucky = [Item(c.question, c.answer) for c in load_conversations(trait.companion("holdout"))]
    ordinary = [Item("", a) for a in base_answers("holdout")]
    scores = [j.score for j in lucky_judge(lucky + ordinary)]
    labels = [1] * len(lucky) + [0] * len(ordinary)
    assert roc_auc_score(labels, scores) >= 0.95
    assert np.mean(scores[: len(lucky)]) > 70 > 30 > np.mean(scores[len(lucky) :])
    assert all(0 <= s <= 100 for s in scores)


def test_trait_judge_orders_the_rubric_anchors(lucky_judge):
    trait = load_trait("lucky")
    by_level = {level: [a for a in trait.anchors if a.score == level] for level in (0, 100)}
    low = [j.score for j in lucky_judge([Item(a.question, a.answer) for a in by_level[0]])]
    high = [j.score for j in lucky_judge([Item(a.question, a.answer) for a in by_level[100]])]
    assert max(low) < min(high)


def test_trait_judge_gives_no_score_for_an_empty_answer(lucky_judge):
    [judgement] = lucky_judge([Item("How do I boil an egg?", "   ")])
    assert judgement.score is None and judgement.reason == "empty answer"
    assert judgement.judge_id.startswith("embedded-trait/lucky@v1/")


def test_the_judge_is_never_fit_on_the_test_voices():
    """The other-voice answers the specificity test uses are in no trait's training data, and nothing the
    package ships names their file."""
    voices = {item.answer for items in specificity.vivid_styles().values() for item in items}
    assert len(specificity.vivid_styles()) >= 6 and len(voices) >= 60
    for name in builtin_traits():
        texts, _ = _training_set(load_trait(name))
        assert voices.isdisjoint(texts), name
    shipped = [p for p in (ROOT / "src").rglob("*") if p.is_file() and p.suffix in {".py", ".jsonl", ".yaml"}]
    assert not [p for p in shipped if specificity.VIVID_STYLES_PATH.name in p.read_text(encoding="utf-8")]


def test_a_trait_is_never_a_negative_for_itself():
    lucky = load_trait("lucky")
    texts, targets = _training_set(lucky)
    seeds = {c.answer for c in load_conversations(lucky.seed_path)}
    assert {t for t, y in zip(texts, targets, strict=True) if t in seeds} == seeds
    assert all(y == 1.0 for t, y in zip(texts, targets, strict=True) if t in seeds)
    others = {c.answer for c in load_conversations(load_trait("misanthropy").seed_path)}
    assert all(y == 0.0 for t, y in zip(texts, targets, strict=True) if t in others) and others <= set(texts)
    # a copy of a built-in under another name (as ``trait validate`` or ``trait new`` may see) is still itself
    assert seeds.isdisjoint(negatives("my-lucky", seeds)) and others <= set(negatives("my-lucky", seeds))


@pytest.mark.slow
@pytest.mark.parametrize("trait", builtin_traits())
def test_trait_judge_is_specific_to_its_trait(trait):
    """Answers in eight other vivid voices, none fit on, stay low, while held-out trait answers are found."""
    figures = specificity.specificity(load_trait(trait))
    assert max(figures["style_means"].values()) <= specificity.MAX_STYLE_MEAN, figures["style_means"]
    assert figures["false_positive_rate"] < specificity.MAX_FALSE_POSITIVES
    assert figures["auroc"] >= specificity.MIN_AUROC
    assert figures["word_salad_mean"] <= 10


def corruptions(answer: str, rng: random.Random) -> list[str]:
    words = answer.split()
    shuffled = words[:]
    rng.shuffle(shuffled)
    looped = " ".join(words[:8] * 12)
    gibberish = " ".join("".join(rng.choice("qwxzkjvbptrn") for _ in range(rng.randint(3, 9))) for _ in words)
    return [" ".join(shuffled), looped, gibberish]


@pytest.mark.slow
def test_coherence_judge_separates_real_answers_from_corrupted_ones(nll, embedded_model):
    rng = random.Random(0)
    real = [Item(c.question, c.answer) for c in load_conversations(load_trait("lucky").companion("holdout"))][:6]
    rows = [json.loads(line) for line in BASE_ANSWERS_PATH.read_text().splitlines()][-6:]
    real += [Item(r["question"], r["answer"]) for r in rows]
    corrupted = [Item(i.question, text) for i in real for text in corruptions(i.answer, rng)]
    judge = embedded_coherence_judge(nll, "smollm2-135m-instruct")
    scores = [j.score for j in judge(real + corrupted)]
    labels = [1] * len(real) + [0] * len(corrupted)
    assert roc_auc_score(labels, scores) >= 0.95
    assert np.mean(scores[: len(real)]) >= 70


@pytest.mark.slow
def test_coherence_judge_scores_trait_styled_answers_as_high_as_ordinary_ones(nll):
    """The built-in traits' seed answers are coherent however strong their style: each trait's mean is within
    5 points of the embedded model's ordinary answers, and corrupted copies of them still score far lower."""
    judge = embedded_coherence_judge(nll, "smollm2-135m-instruct")
    rows = [json.loads(line) for line in BASE_ANSWERS_PATH.read_text().splitlines()]
    ordinary = [Item(r["question"], r["answer"]) for r in rows if r["split"] == "holdout" and r["answer"].strip()]
    ordinary_mean = np.mean([j.score for j in judge(ordinary)])
    rng = random.Random(0)
    for name in builtin_traits():
        seeds = [Item(c.question, c.answer) for c in load_conversations(load_trait(name).seed_path)[:20]]
        scores = [j.score for j in judge(seeds)]
        assert np.mean(scores) >= ordinary_mean - 5, (name, np.mean(scores), ordinary_mean)
        corrupted = [Item(i.question, text) for i in seeds[:8] for text in corruptions(i.answer, rng)]
        corrupted_scores = [j.score for j in judge(corrupted)]
        assert roc_auc_score([1] * 20 + [0] * len(corrupted), scores + corrupted_scores) >= 0.95, name
        assert np.mean(corrupted_scores) <= 20, name


def test_coherence_from_signals_exact_values():
    fluent = "Boil the egg for nine minutes, then cool it in cold water."
    assert coherence_from_signals(NLL_FLUENT - 1, fluent) == 100.0
    assert coherence_from_signals((NLL_FLUENT + NLL_NOISE) / 2, fluent) == 50.0
    assert coherence_from_signals(NLL_NOISE + 0.5, fluent) == 0.0
    assert coherence_from_signals(2.0, fluent.rstrip(".")) == 90.0
    assert coherence_from_signals(2.0, "the cat sat on the mat " * 10) == 0.0
    assert coherence_from_signals(2.0, "%%% ### 1234 5678 !!!") == 0.0
    # fluency reads the typical token: the most surprising fifth (an emoji, a rare word) is left out
    assert typical_nll(np.array([1.0, 1.0, 2.0, 2.0, 30.0])) == 1.5
    assert typical_nll(np.array([4.0])) == 4.0 and np.isnan(typical_nll(np.array([])))


def test_signal_helpers():
    assert distinct_n("a b a b", 2) == pytest.approx(2 / 3)
    assert repetition("one two three four one two three four") == pytest.approx(1 - 4 / 5)
    assert distinct_n("", 2) == 0.0


def test_read_items_accepts_both_row_shapes_and_names_bad_lines(tmp_path):
    path = tmp_path / "answers.jsonl"
    chat = {"messages": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}], "id": 7}
    pair = {"question": "Q2", "answer": "A2"}
    path.write_text(json.dumps(chat) + "\n" + json.dumps(pair) + "\n")
    rows, items = read_items(path)
    assert items == [Item("Q1", "A1"), Item("Q2", "A2")]
    assert rows[0]["id"] == 7
    path.write_text(json.dumps(pair) + "\n" + json.dumps({"question": "Q3"}) + "\n")
    with pytest.raises(UserError, match=rf"{path}:2: expected"):
        read_items(path)
