"""Planning a run: a model's shape from its config.json alone (the meta device), checked against published sizes."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest

from traitloop.errors import UserError
from traitloop.models import model_shape

CONFIGS = Path(__file__).parent / "data" / "model_configs"


# The published sizes (model cards, hub safetensors counts); the config.json sources: data/model_configs/README.md.
@pytest.mark.parametrize(
    ("folder", "published"),
    [("Qwen3-4B-Instruct-2507", 4.02e9), ("Qwen2.5-3B-Instruct", 3.09e9), ("Llama-3.1-8B-Instruct", 8.03e9)],
)
def test_parameter_counts_match_the_published_sizes(folder, published):
    shape = model_shape(str(CONFIGS / folder))
    assert abs(shape.parameters / published - 1) < 0.02
    assert shape.lora_parameters(16, "all-linear") < shape.parameters * 0.01  # r16 adapts a fraction of a percent


def test_offline_a_hub_model_is_refused_saying_only_config_json_is_needed(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="config.json of model some-org/some-model-not-cached.*a local folder works"):
        model_shape("some-org/some-model-not-cached")
