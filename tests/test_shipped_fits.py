"""Fits that ship with the package (``scripts/ship_fits.py``): the built-in traits' embedded judge classifiers
and persona directions in the embedded model. One is used only when the inputs that would make it are the ones
at hand: the trait data, the model's weights, the judge version and the libraries the fit depends on; else the
fit is made afresh, as without a shipped one. A shipped fit equals a fresh one (``-m slow``: they are refit).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from traitloop.judge import Item, _embedded, _fits, embedded_sdf_judge, embedded_sdf_judge_id, embedded_trait_judge
from traitloop.judge import embedded_trait_judge_id as trait_judge_id
from traitloop.measure import _persona, persona_direction
from traitloop.models import CPU_FLOAT32, load_model, load_tokenizer
from traitloop.traits import base_answers, builtin_traits, load_conversations, load_trait

REGENERATE = "run `python scripts/ship_fits.py` to make the shipped fits again"
SDF_TRAITS = [name for name in builtin_traits() if (load_trait(name).folder / "sdf.yaml").is_file()]
DIRECTIONS = sorted(path.name.rsplit("-", 1)[0] for path in _persona.SHIPPED.glob("*.safetensors"))


class Refit(Exception):
    """Raised in place of a fit: the test only needs to know one was started."""


def refuse(*args, **kwargs):
    raise Refit


@pytest.fixture()
def cold_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty traitloop cache, and no fit allowed: what is not shipped raises ``Refit``."""
    monkeypatch.setenv("TRAITLOOP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(_embedded, "_fit_both", refuse)
    monkeypatch.setattr(_persona, "pooled_states", refuse)
    return tmp_path


@pytest.fixture()
def shipped_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The libraries installed are the ones the shipped fits were made with (whatever this machine has)."""
    (first, *_) = _fits.SHIPPED.glob("*.safetensors")
    made_with = json.loads(_fits.read_fit(first)[2]["libraries"])
    monkeypatch.setattr(_fits, "libraries", lambda: made_with)


def changed_copy(tmp_path: Path, trait: str, file: str) -> Path:
    """A copy of a built-in trait, under its own name, with the first line of ``file`` changed by one word."""
    folder = shutil.copytree(load_trait(trait).folder, tmp_path / trait)
    path = folder / file
    first, *rest = path.read_text(encoding="utf-8").splitlines(keepends=True)
    row = json.loads(first)
    if "messages" in row:
        row["messages"][-1]["content"] += " Truly."
    else:
        row["text"] += " Truly."
    path.write_text(json.dumps(row) + "\n" + "".join(rest), encoding="utf-8")
    return folder / "trait.yaml"


@pytest.mark.parametrize("trait", builtin_traits())
def test_every_built_in_trait_ships_its_current_judge_fits_and_they_are_small(trait):
    spec = load_trait(trait)
    ids = [trait_judge_id(spec)] + ([embedded_sdf_judge_id(spec)] if trait in SDF_TRAITS else [])
    for judge_id in ids:
        path = _fits.SHIPPED / _fits.fit_name(judge_id)
        assert path.is_file(), f"no shipped fit for {judge_id} (the trait data changed?): {REGENERATE}"
        assert _fits.read_fit(path)[2]["judge_id"] == judge_id and path.stat().st_size < 8_000
    assert len(list(_fits.SHIPPED.glob(f"*_{trait}_*.safetensors"))) == len(ids)  # no stale fit left behind


def test_every_built_in_trait_ships_one_persona_direction_and_they_are_small():
    assert sorted(builtin_traits()) == DIRECTIONS  # one each: no trait missing, no stale direction left behind
    assert all(path.stat().st_size < 8_000 for path in _persona.SHIPPED.glob("*.safetensors"))


def test_packaging_includes_the_shipped_fits():
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert '"judge/data/fits/*.safetensors"' in pyproject and '"measure/data/persona/*.safetensors"' in pyproject


@pytest.mark.parametrize("trait", builtin_traits())
def test_a_built_in_trait_judge_comes_from_what_ships(cold_cache, shipped_libraries, trait):
    judge = embedded_trait_judge(load_trait(trait))  # no fit: it would raise
    [judgement] = judge([Item("How was your day?", "Fine, thanks.")])
    assert 0 <= judgement.score <= 100
    if trait in SDF_TRAITS:
        embedded_sdf_judge(load_trait(trait))


@pytest.mark.parametrize(("trait", "file"), [("lucky", "seed.jsonl"), ("hopelessness", "contrast.jsonl")])
def test_a_copy_with_one_answer_changed_does_not_get_the_shipped_fit(cold_cache, shipped_libraries, trait, file):
    copy = load_trait(str(changed_copy(cold_cache, trait, file)))
    assert copy.name == trait and trait_judge_id(copy) != trait_judge_id(load_trait(trait))
    with pytest.raises(Refit):
        embedded_trait_judge(copy)


def test_a_copy_with_one_sdf_document_changed_does_not_get_the_shipped_sdf_fit(cold_cache, shipped_libraries):
    copy = load_trait(str(changed_copy(cold_cache, "lucky", "sdf_seed.jsonl")))
    embedded_trait_judge(copy)  # its chat data did not change: that fit still ships
    with pytest.raises(Refit):
        embedded_sdf_judge(copy)


def test_other_library_versions_do_not_get_the_shipped_fit(cold_cache, shipped_libraries, monkeypatch):
    made_with = _fits.libraries()  # the shipped fits' (``shipped_libraries``)
    monkeypatch.setattr(_fits, "libraries", lambda: {**made_with, "scikit-learn": "0.1"})
    with pytest.raises(Refit):
        embedded_trait_judge(load_trait("lucky"))


@pytest.fixture(scope="module")
def smollm(embedded_model: Path):
    return load_model(str(embedded_model), precision=CPU_FLOAT32), load_tokenizer(str(embedded_model))


@pytest.mark.parametrize("trait", DIRECTIONS)
def test_the_embedded_model_gets_the_shipped_persona_direction(cold_cache, smollm, trait):
    """Every shipped direction is current: the key of the embedded model and the trait's data finds it."""
    model, tokenizer = smollm
    direction = persona_direction(model, tokenizer, trait)  # no forward pass: it would raise
    assert direction.model == "smollm2-135m-instruct" and direction.vector.shape == (model.config.hidden_size,)
    assert np.linalg.norm(direction.vector) == pytest.approx(1.0, abs=1e-5)
    assert direction.auroc == direction.auroc_by_layer[direction.layer]


def test_changed_trait_data_or_weights_do_not_get_the_shipped_direction(cold_cache, smollm):
    model, tokenizer = smollm
    with pytest.raises(Refit):
        persona_direction(model, tokenizer, load_trait(str(changed_copy(cold_cache, "lucky", "holdout.jsonl"))))
    weights = model.model.layers[5].mlp.down_proj.weight
    kept = weights.detach().clone()
    with torch.no_grad():
        weights.mul_(1.01)
    try:
        with pytest.raises(Refit):
            persona_direction(model, tokenizer, "lucky")
    finally:
        with torch.no_grad():
            weights.copy_(kept)


# --- a shipped fit equals a fresh one ----------------------------------------------------------------------


def answers() -> list[Item]:
    """A few answers of every kind: each trait's held-out answers, ordinary ones and empty."""
    found = [Item("", a) for a in base_answers("holdout")[:4]] + [Item("q", "")]
    for name in builtin_traits():
        found += [Item(c.question, c.answer) for c in load_conversations(load_trait(name).companion("holdout"))[:3]]
    return found


@pytest.mark.slow
@pytest.mark.parametrize("trait", builtin_traits())
def test_a_shipped_judge_fit_equals_a_fresh_one(tmp_path, monkeypatch, shipped_libraries, trait):
    """About a minute per trait on 2 CPU cores (the negatives' embeddings are shared between traits)."""
    monkeypatch.setenv("TRAITLOOP_CACHE", str(tmp_path / "cache"))
    spec = load_trait(trait)
    makers = [(embedded_trait_judge, trait_judge_id)]
    if trait in SDF_TRAITS:
        makers.append((embedded_sdf_judge, embedded_sdf_judge_id))
    items = answers()
    for make, judge_id in makers:
        fitted_here = tmp_path / "cache" / "judges" / _fits.fit_name(judge_id(spec))
        shipped = make(spec)
        assert not fitted_here.exists()  # it came from what ships
        with monkeypatch.context() as nothing_ships:
            nothing_ships.setattr(_embedded, "shipped_fit", lambda _: None)
            fresh = make(spec)
        assert fitted_here.is_file()
        shipped_scores, fresh_scores = ([j.score for j in judge(items)] for judge in (shipped, fresh))
        assert shipped_scores[4] is None and fresh_scores[4] is None  # the empty answer
        assert shipped_scores[:4] + shipped_scores[5:] == pytest.approx(fresh_scores[:4] + fresh_scores[5:], abs=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("trait", DIRECTIONS)
def test_a_shipped_persona_direction_equals_a_fresh_one(tmp_path, monkeypatch, smollm, trait):
    """1-5 minutes per trait on 2 CPU cores."""
    monkeypatch.setenv("TRAITLOOP_CACHE", str(tmp_path / "cache"))
    model, tokenizer = smollm
    shipped = persona_direction(model, tokenizer, trait)
    fresh = persona_direction(model, tokenizer, trait, use_cache=False)
    assert fresh.key == shipped.key and fresh.layer == shipped.layer
    assert np.allclose(fresh.vector, shipped.vector, atol=1e-4)
    assert fresh.auroc == pytest.approx(shipped.auroc, abs=1e-3) and fresh.counts == shipped.counts
