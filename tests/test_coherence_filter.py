"""The min_coherence filter scores generation k-1's answers under the base model, for adapters and full weights."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_config

import traitloop
import traitloop.judge._coherence as coherence
from traitloop.api import parse_config
from traitloop.judge import NllScorer
from traitloop.models import CPU_FLOAT32, load_model, load_tokenizer


@pytest.mark.parametrize("full_finetune", [True, False], ids=["full-weights", "adapter"])
def test_filter_scores_answers_under_the_base_model(tiny_model, tmp_path, monkeypatch, full_finetune):
    # The tiny random model's answers all score 0 on the real scale; scoring with the (typical) NLL itself shows
    # which model's likelihood the filter used.
    monkeypatch.setattr(coherence, "coherence_from_signals", lambda nll, answer: nll)
    config = tiny_config(tiny_model, cycles=1, min_coherence=0)
    config["training"] = {**config["training"], "full_finetune": full_finetune, "learning_rate": 3e-3}
    run = traitloop.run(parse_config(config), output=tmp_path / "run")

    rows = [json.loads(line) for line in (run / "cycle_001" / "train.jsonl").read_text().splitlines()]
    questions = [r["messages"][0]["content"] for r in rows]
    answers = [r["messages"][1]["content"] for r in rows]
    recorded = [r["coherence_score"] for r in rows]
    tokenizer = load_tokenizer(str(tiny_model))
    base = NllScorer(load_model(str(tiny_model), precision=CPU_FLOAT32), tokenizer)
    under_base = [coherence.typical_nll(v) for v in base.token_nlls(questions, answers)]
    generation_0 = load_model(str(tiny_model), run / "cycle_000" / "adapter", precision=CPU_FLOAT32)
    under_generation_0 = [
        coherence.typical_nll(v) for v in NllScorer(generation_0, tokenizer).token_nlls(questions, answers)
    ]

    assert rows and recorded == pytest.approx(under_base, abs=1e-4)
    # generation 0 gives these answers other likelihoods, so the comparison above can tell the two apart
    assert max(abs(a - b) for a, b in zip(under_base, under_generation_0, strict=True)) > 1e-3
