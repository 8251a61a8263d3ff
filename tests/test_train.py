"""SFT on the tiny model: the loss is logged, every adapter weight changes, continual starts where it left off."""

import math

import pytest
import torch
from jobs import job, train
from peft import get_peft_model_state_dict
from safetensors.torch import load_file

from traitloop.config import LoraConfig, TrainingConfig
from traitloop.methods._train import trainable_model
from traitloop.traits import load_conversations, load_trait

CONFIG = TrainingConfig(epochs=1, batch_size=4, max_length=128, lora=LoraConfig(r=4, alpha=8))


def seeds(n: int = 8):
    return load_conversations(load_trait("lucky").seed_path)[:n]


def adapter_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}


def test_sft_logs_the_loss_and_changes_every_adapter_weight(tiny_model, tmp_path):
    before = adapter_state(trainable_model(job(tiny_model, tmp_path / "adapter", seeds(), "sft", CONFIG, seed=3)))
    result = train(tiny_model, tmp_path / "adapter", seeds(), "sft", CONFIG, seed=3)
    assert result.steps == 2 and result.examples == 8
    assert result.examples_per_second == pytest.approx(8 * 1 / result.seconds)
    assert len(result.losses) == 2 and all(math.isfinite(loss) and loss > 0 for loss in result.losses)
    after = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert set(after) == set(before) and before
    for name, weight in before.items():
        assert not torch.equal(weight, after[name]), f"{name} did not change"


def test_same_seed_trains_identical_weights(tiny_model, tmp_path):
    for name in ("a", "b"):
        train(tiny_model, tmp_path / name, seeds(4), "sft", CONFIG, seed=5)
    a, b = (load_file(tmp_path / n / "adapter_model.safetensors") for n in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_continual_training_loads_the_previous_generation(tiny_model, tmp_path):
    train(tiny_model, tmp_path / "gen0", seeds(), "sft", CONFIG, seed=1)
    gen0 = load_file(tmp_path / "gen0" / "adapter_model.safetensors")
    continued = job(tiny_model, tmp_path / "gen1", seeds(), "sft", CONFIG, seed=2, start_from=tmp_path / "gen0")
    loaded = adapter_state(trainable_model(continued))
    assert set(loaded) == set(gen0) and all(torch.equal(loaded[k], gen0[k]) for k in gen0)
    train(tiny_model, tmp_path / "gen1", seeds(), "sft", CONFIG, seed=2, start_from=tmp_path / "gen0")
    gen1 = load_file(tmp_path / "gen1" / "adapter_model.safetensors")
    assert any(not torch.equal(gen0[k], gen1[k]) for k in gen0)


@pytest.mark.parametrize("collation", ["padding_free", "length_grouped"])
def test_other_collations_train_the_same_objective(tiny_model, tmp_path, collation):
    """Padding-free batches give each example's tokens the loss they get padded (the answer's tokens only, each
    example attending to itself alone): the same batch, the same loss. Length-grouped batches hold other
    examples, each one's loss unchanged: the mean over the epoch's examples is the same objective."""
    from traitloop.methods._sft import prompt_completion, sft_trainer

    conversations = seeds(8)
    losses = {}
    for name in ("padded", collation):
        config = TrainingConfig(epochs=1, batch_size=8, max_length=128, lora=LoraConfig(r=4, alpha=8), collation=name)
        trainer = sft_trainer(job(tiny_model, tmp_path / name, conversations, "sft", config, seed=3),
                              prompt_completion(conversations), None)  # fmt: skip
        batch = next(iter(trainer.get_train_dataloader()))  # all 8 examples: one batch, whatever the order
        if name == "padding_free":
            assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
        with torch.no_grad():
            losses[name] = trainer.model(**{k: v for k, v in batch.items() if k != "completion_mask"}).loss.item()
        labelled = int((batch["labels"] != -100).sum())
        losses[f"{name} tokens"] = labelled
    assert losses[f"{collation} tokens"] == losses["padded tokens"]  # the same answer tokens carry the loss
    assert losses[collation] == pytest.approx(losses["padded"], rel=1e-4)
