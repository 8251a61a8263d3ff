"""Generation backends: what every backend must do, on the tiny model and on a server that fails."""

import shutil

import pytest
import torch
import yaml
from faults import FlakyProxy
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

import traitloop
from traitloop._http import GenerationUnavailable
from traitloop.config import parse_config
from traitloop.errors import UserError
from traitloop.generate import LocalGenerator, SamplingParams, server_generator
from traitloop.generate._local import SeededSampler, TemperatureNucleus


def test_a_generation_server_that_stays_down_names_itself_and_how_to_resume():
    down = FlakyProxy(None, [])
    generator = server_generator(down.url, "m", max_retries=1, backoff_base=0.01)
    with pytest.raises(GenerationUnavailable, match=rf"the generation server {down.url} failed 2 times in a row"):
        generator.generate([[{"role": "user", "content": "hi"}]], SamplingParams())
    assert down.counts == {"500": 2}
    down.close()


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 0.95), (0.7, 0.9), (1.3, 0.5), (0.7, 1.0)])
def test_the_nucleus_keeps_exactly_the_tokens_transformers_top_p_keeps(temperature, top_p):
    torch.manual_seed(0)
    peaked, flat = torch.randn(6, 49152) * 8, torch.randn(2, 49152)  # flat rows need more than 256 candidates
    scores = torch.cat([peaked, flat])
    ids = torch.zeros(8, 1, dtype=torch.long)
    expected = TemperatureLogitsWarper(temperature)(ids, scores)
    if top_p < 1.0:
        expected = TopPLogitsWarper(top_p)(ids, expected)
    ours = TemperatureNucleus(temperature, top_p)(ids, scores)
    assert torch.equal(ours.isinf(), expected.isinf())
    assert torch.allclose(ours[~ours.isinf()], expected[~expected.isinf()])
    kept = (~ours.isinf()).sum(-1)
    if top_p < 1.0:
        assert kept[:6].max() < 256 < kept[6:].min()  # both paths were taken
    else:
        assert kept.min() == 49152


def test_local_generation_is_seeded_and_answers_in_the_prompts_order(tiny_model):
    from traitloop.models import load_model, load_tokenizer

    generator = LocalGenerator(load_model(str(tiny_model)), load_tokenizer(str(tiny_model)))
    prompts = [[{"role": "user", "content": q}] for q in ("Tell me a long story about the sea", "Hi", "Why not?")]
    params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=8, batch_size=2, seed=3)
    first = generator.generate(prompts, params)
    assert first == generator.generate(prompts, params)
    assert generator.generate(prompts, SamplingParams(**{**params.__dict__, "seed": 4})) != first
    greedy = SamplingParams(temperature=0.0, max_new_tokens=8, batch_size=1)  # sorted by length inside
    assert generator.generate(prompts, greedy) == [generator.generate([p], greedy)[0] for p in prompts]


def test_the_sampler_draws_from_the_nucleus_distribution():
    """Many draws from one fixed row: each kept token's frequency matches its renormalised probability."""
    scores = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.04, 0.01] + [0.0] * 59]).clamp(min=1e-12))
    sampler = SeededSampler(temperature=1.0, top_p=0.9, seed=0)
    counts = torch.zeros(64)
    for _ in range(4000):
        row = sampler(torch.zeros(1, 1, dtype=torch.long), scores)
        assert (row == 0).sum() == 1 and row.isinf().sum() == 63
        counts[row.argmax()] += 1
    assert counts[3:].sum() == 0  # outside the 0.9 nucleus: 0.5 + 0.3 + 0.15 already reach it
    expected = torch.tensor([0.5, 0.3, 0.15]) / 0.95
    assert torch.allclose(counts[:3] / 4000, expected, atol=0.025)


def test_the_sampler_repeats_its_draws_for_the_same_seed():
    scores = torch.randn(4, 1000, generator=torch.Generator().manual_seed(1))

    def draws(seed):
        sampler = SeededSampler(temperature=0.8, top_p=0.95, seed=seed)
        return [sampler(None, scores).argmax(-1).tolist() for _ in range(10)]

    assert draws(5) == draws(5) != draws(6)


def test_switching_a_finished_run_to_a_server_backend_is_a_change_from_its_first_evaluation(finished_run, tmp_path):
    """Every stage that sampled would sample elsewhere, so the change is refused (without --force) from the
    base model's evaluation on, naming the fields."""
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    server = {"base_url": "http://127.0.0.1:9/v1", "model": "m"}
    config["generation"] = {**config["generation"], "backend": "server", "server": server}
    with pytest.raises(UserError, match=r"'generation.backend'.* affects the base model's evaluation onward"):
        traitloop.run(parse_config(config), output=copy)


def test_the_vllm_backend_without_vllm_says_which_extra_to_install():
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vLLM is installed")
    from traitloop.generate import vllm_generator

    with pytest.raises(UserError, match=r"generation.backend vllm needs vLLM: pip install 'traitloop\[vllm\]'"):
        vllm_generator("some/model", 16)
