import json

import pytest

from traitloop.errors import UserError
from traitloop.models import is_cached, load_model, resolve_model


def test_embedded_model_is_converted_to_a_plain_trainable_model(embedded_model):
    config = json.loads((embedded_model / "config.json").read_text())
    assert "quantization_config" not in config  # trainers refuse GGUF-quantized models
    assert (embedded_model / "model.safetensors").is_file()
    assert is_cached("smollm2-135m-instruct")
    model = load_model(str(embedded_model))
    assert getattr(model, "hf_quantizer", None) is None
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)


def test_model_names_resolve_or_fail_clearly(tmp_path, tiny_model):
    assert resolve_model(str(tiny_model)) == str(tiny_model)
    assert resolve_model("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB/SmolLM2-135M"
    with pytest.raises(UserError, match="unknown model 'smollm2-135m' - did you mean 'smollm2-135m-instruct'"):
        resolve_model("smollm2-135m")
    with pytest.raises(UserError, match="has no config.json"):
        resolve_model(str(tmp_path))
