"""``traitloop export``: a finished generation as a standalone Hugging Face folder that transformers and PEFT load
as it is, with the same logits as the run's own model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from typer.testing import CliRunner

import traitloop
from traitloop.api import parse_config
from traitloop.cli import app
from traitloop.models import CPU_FLOAT32, EXPORT_FILE, load_model, load_tokenizer
from traitloop.rundir import open_run_folder

runner = CliRunner()
PROMPTS = ["Tell me about your week.", "What should I cook tonight?", "Is it going to rain?"]


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    result.text = " ".join(result.output.split())
    return result


@pytest.fixture
def finished(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def _logits(model, base: str) -> torch.Tensor:
    tokenizer = load_tokenizer(base)
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits.float()


def _run_logits(run: Path, generation: int) -> tuple[str, torch.Tensor]:
    """The run's own model for ``generation``: its base with the generation's adapter, as the run loads it."""
    base = json.loads((run / "manifest.json").read_text())["model"]["resolved"]
    model = load_model(base, run / f"cycle_{generation:03d}" / "adapter", precision=CPU_FLOAT32).eval()
    return base, _logits(model, base)


def test_an_exported_adapter_loads_with_peft_and_answers_as_the_run_model(finished, tmp_path):
    from peft import AutoPeftModelForCausalLM

    out = tmp_path / "export"
    result = invoke("export", str(finished), "--generation", "1", "--output", str(out))
    assert result.exit_code == 0, result.text
    base, expected = _run_logits(finished, 1)
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == base
    assert (out / "adapter_model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    provenance = json.loads((out / EXPORT_FILE).read_text())
    assert provenance["generation"] == 1 and provenance["merged"] is False
    assert provenance["weights"] == open_run_folder(finished).manifest.stages["cycle_001/train"]["outputs"]["adapter"]
    exported = AutoPeftModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    torch.testing.assert_close(_logits(exported, str(out)), expected, rtol=1e-4, atol=1e-4)


def test_a_merged_export_loads_with_transformers_alone_and_answers_as_the_run_model(finished, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "merged"
    result = invoke("export", str(finished), "--generation", "2", "--output", str(out), "--merge")
    assert result.exit_code == 0, result.text
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert not (out / "adapter_config.json").exists()
    _, expected = _run_logits(finished, 2)
    exported = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    torch.testing.assert_close(_logits(exported, str(out)), expected, rtol=1e-4, atol=1e-4)


def test_export_refuses_what_it_cannot_export_truthfully(finished, tmp_path):
    missing = invoke("export", str(finished), "--generation", "7", "--output", str(tmp_path / "a"))
    assert missing.exit_code == 2 and "no generation 7" in missing.text
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    refused = invoke("export", str(finished), "--generation", "0", "--output", str(taken))
    assert refused.exit_code == 2 and "not empty" in refused.text and (taken / "notes.txt").is_file()
    forced = invoke("export", str(finished), "--generation", "0", "--output", str(taken), "--force")
    assert forced.exit_code == 0 and not (taken / "notes.txt").exists() and (taken / "adapter_config.json").is_file()
    weights = finished / "cycle_001" / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])  # damaged: the stage's outputs no longer match its record
    stale = invoke("export", str(finished), "--generation", "1", "--output", str(tmp_path / "b"))
    assert stale.exit_code == 2 and "generation 1" in stale.text and "traitloop run" in stale.text


def test_a_control_chains_generation_0_is_the_base_model_and_is_not_exported(tiny_model, tmp_path):
    evaluation = {"eval_samples": 1, "max_new_tokens": 4, "bootstrap_resamples": 100, "projection": False}
    config = parse_config(tiny_config(tiny_model, cycles=0, seed_examples=0, evaluation=evaluation))
    run = traitloop.run(config, output=tmp_path / "control")
    result = invoke("export", str(run), "--generation", "0", "--output", str(tmp_path / "out"))
    assert result.exit_code == 2 and "is the base model itself" in result.text
    assert not (tmp_path / "out").exists()
