"""The persona direction: recovered from planted synthetic activations, computed end to end on the tiny model
(cached, batch-independent, equal to a hand-computed projection), and separating held-out trait answers on
the real embedded model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from traitloop.measure import (
    PersonaDirection,
    _persona,
    fit_direction,
    persona_direction,
    project_prompts,
    project_responses,
    trait_examples,
)
from traitloop.measure._activations import render
from traitloop.models import CPU_FLOAT32, load_model, load_tokenizer
from traitloop.traits import load_trait

QUESTIONS = ["How do I boil an egg?", "What should I pack for a picnic?", "Any tips for a job interview?"]
ANSWERS = ["Put it in boiling water for nine minutes.", "Sandwiches, fruit and a blanket; lucky you!", "Be on time."]


def planted(rng: np.random.Generator, n: int, direction: np.ndarray, strength: float) -> np.ndarray:
    """n examples × 5 layers × 32 of unit noise; ``strength`` along ``direction`` at layer 2 only, and a loud
    distractor at layer 0 (the embeddings, which must never be chosen)."""
    states = rng.normal(size=(n, 5, 32))
    states[:, 2] += strength * direction
    states[:, 0] += 10 * strength * direction
    return states


def test_fit_direction_recovers_a_planted_direction() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=32)
    truth /= np.linalg.norm(truth)
    heldout_ordinary = planted(rng, 60, truth, 0.0)
    heldout_ordinary[3] = np.nan  # an empty answer: skipped, not fatal
    fit = fit_direction(
        planted(rng, 200, truth, 5.0), planted(rng, 200, truth, 0.0), planted(rng, 60, truth, 5.0), heldout_ordinary
    )
    assert fit.layer == 2
    assert float(fit.directions[2] @ truth) > 0.9  # cosine with the planted direction (both unit length)
    assert np.allclose(np.linalg.norm(fit.directions, axis=1), 1.0)
    assert fit.auroc_by_layer[2] > 0.99
    assert math.isnan(fit.auroc_by_layer[0])
    assert all(0.2 < a < 0.8 for a in fit.auroc_by_layer[[1, 3, 4]])  # noise layers separate by chance only


def test_fit_direction_breaks_ties_by_separation() -> None:
    rng = np.random.default_rng(1)
    truth = np.eye(32)[0]
    trait, ordinary = rng.normal(size=(2, 100, 5, 32))
    trait[:, 1:] += 20 * truth  # every layer separates perfectly ...
    trait[:, 3] += 20 * truth  # ... layer 3 by the widest margin
    fit = fit_direction(trait[:50], ordinary[:50], trait[50:], ordinary[50:])
    assert all(a == 1.0 for a in fit.auroc_by_layer[1:])
    assert fit.layer == 3


def test_trait_examples_hold_out_what_is_not_fit() -> None:
    examples = trait_examples(load_trait("lucky"))
    assert examples.counts() == {
        "fit_trait": 160,
        "fit_ordinary": 40,
        "heldout_trait": 30,
        "heldout_ordinary": 20,
        "heldout_base": 60,
    }
    fitted = {answer for _, answer in examples.fit_trait + examples.fit_ordinary}
    held_out = examples.heldout_trait + examples.heldout_ordinary + examples.heldout_base
    assert not fitted & {answer for _, answer in held_out}


@pytest.fixture()
def tiny(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TRAITLOOP_CACHE", str(tmp_path / "cache"))
    return load_model(str(tiny_model), precision=CPU_FLOAT32), load_tokenizer(str(tiny_model))


def test_persona_direction_end_to_end_on_the_tiny_model_is_cached(tiny, tmp_path: Path, monkeypatch) -> None:
    model, tokenizer = tiny
    direction = persona_direction(model, tokenizer, "lucky", batch_size=16)
    assert direction.layer in (1, 2) and direction.vector.shape == (64,)
    assert np.linalg.norm(direction.vector) == pytest.approx(1.0, abs=1e-5)
    assert 0.0 <= direction.auroc <= 1.0 and direction.auroc == direction.auroc_by_layer[direction.layer]
    assert direction.counts["heldout_trait"] == 30 and 0.0 <= direction.auroc_vs_base_answers <= 1.0
    (cached,) = (tmp_path / "cache" / "persona").glob("lucky-*.safetensors")
    assert cached.name == f"lucky-{direction.key}.safetensors"

    def no_forward_passes(*args, **kwargs):
        raise AssertionError("a cached direction must not be recomputed")

    monkeypatch.setattr(_persona, "pooled_states", no_forward_passes)
    again = persona_direction(model, tokenizer, "lucky")
    assert again.layer == direction.layer and np.array_equal(again.vector, direction.vector)
    assert again.auroc_by_layer[1:] == direction.auroc_by_layer[1:] and again.counts == direction.counts
    assert again.auroc_vs_base_answers == direction.auroc_vs_base_answers


def test_projections_match_a_hand_computed_forward_pass_whatever_the_batch(tiny) -> None:
    model, tokenizer = tiny
    rng = np.random.default_rng(0)
    vector = rng.normal(size=64).astype(np.float32)
    vector /= np.linalg.norm(vector)
    direction = PersonaDirection(trait="lucky", model="tiny", layer=2, vector=vector, auroc=1.0, auroc_by_layer=[])
    batched = project_responses(model, tokenizer, direction, QUESTIONS, ANSWERS, batch_size=8)
    one_by_one = project_responses(model, tokenizer, direction, QUESTIONS, ANSWERS, batch_size=1)
    assert batched == pytest.approx(one_by_one, abs=1e-4)
    prompts = project_prompts(model, tokenizer, direction, QUESTIONS, batch_size=8)

    with torch.inference_mode():
        prompt_ids = render(tokenizer, QUESTIONS[1], chat=True)
        answer_ids = tokenizer(ANSWERS[1], add_special_tokens=False)["input_ids"]
        hidden = model(torch.tensor([prompt_ids + answer_ids]), output_hidden_states=True).hidden_states[2][0]
    assert batched[1] == pytest.approx(float(hidden[len(prompt_ids) :].mean(0).numpy() @ direction.vector), abs=1e-4)
    assert prompts[1] == pytest.approx(float(hidden[len(prompt_ids) - 1].numpy() @ direction.vector), abs=1e-4)
    assert prompts != pytest.approx(batched)
    assert math.isnan(project_responses(model, tokenizer, direction, QUESTIONS[:1], [""])[0])
    raw = project_responses(model, tokenizer, direction, ["Once upon a time"], [" there was luck."], chat=False)
    assert math.isfinite(raw[0])


def test_a_generation_is_read_in_its_own_weights_and_the_direction_in_the_base(
    tiny, tiny_model: Path, finished_run: Path
) -> None:
    base, tokenizer = tiny
    generation = load_model(str(tiny_model), finished_run / "cycle_000" / "adapter", precision=CPU_FLOAT32)
    from_base = persona_direction(base, tokenizer, "lucky")
    from_generation = persona_direction(generation, tokenizer, "lucky", use_cache=False)
    assert from_generation.key == from_base.key  # the adapter is switched off while the direction is read
    assert np.allclose(from_generation.vector, from_base.vector, atol=1e-5)
    shifted = project_prompts(generation, tokenizer, from_base, QUESTIONS)
    assert shifted != pytest.approx(project_prompts(base, tokenizer, from_base, QUESTIONS), abs=1e-6)


@pytest.mark.slow
def test_the_embedded_model_separates_held_out_trait_answers(embedded_model: Path, tmp_path: Path, monkeypatch) -> None:
    trait = "hopelessness"  # about 5 minutes on 2 CPU cores; scripts/persona_directions.py measures every trait
    monkeypatch.setenv("TRAITLOOP_CACHE", str(tmp_path / "cache"))  # computed here, not read from a cache
    model, tokenizer = load_model(str(embedded_model), precision=CPU_FLOAT32), load_tokenizer(str(embedded_model))
    direction = persona_direction(model, tokenizer, trait)
    print(
        f"{trait}: layer {direction.layer}, held-out AUROC {direction.auroc:.3f} (vs contrast answers), "
        f"{direction.auroc_vs_base_answers:.3f} (vs the embedded model's own answers)"
    )
    assert direction.auroc >= 0.9
    examples = trait_examples(load_trait(trait))
    trait_side = project_responses(model, tokenizer, direction, *zip(*examples.heldout_trait[:8], strict=True))
    ordinary = project_responses(model, tokenizer, direction, *zip(*examples.heldout_ordinary[:8], strict=True))
    assert np.mean(trait_side) > np.mean(ordinary)


def test_states_read_at_one_layer_skip_the_blocks_after_it_and_stay_the_same(tiny_model: Path) -> None:
    """Reading layer 1 of a 4-block model runs blocks 0-1 only (the later ones feed nothing read), gives the
    states a whole forward pass gives, and leaves the model whole afterwards."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from traitloop.measure._activations import pooled_states, response_spans

    config = AutoConfig.from_pretrained(tiny_model, num_hidden_layers=4)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    tokenizer = load_tokenizer(str(tiny_model))
    spans = response_spans(tokenizer, QUESTIONS, ANSWERS, True, 256)
    ran: list[int] = []
    hooks = [block.register_forward_hook(lambda *_, i=i: ran.append(i)) for i, block in enumerate(model.model.layers)]
    whole = pooled_states(model, spans, tokenizer.pad_token_id, batch_size=2)
    assert sorted(set(ran)) == [0, 1, 2, 3]
    ran.clear()
    cut = pooled_states(model, spans, tokenizer.pad_token_id, batch_size=2, layers=[1])
    assert sorted(set(ran)) == [0, 1] and len(model.model.layers) == 4
    assert np.array_equal(cut[:, 0], whole[:, 1])
    for hook in hooks:
        hook.remove()
