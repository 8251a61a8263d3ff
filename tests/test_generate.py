"""Generation backends: what every backend must do, on the tiny model and on a server that fails."""

import shutil

import pytest
import torch
import yaml
from faults import FlakyProxy
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

import traitloop
from traitloop._http import GenerationUnavailable
from traitloop.api import parse_config
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
    peaked, flat = torch.randn(6, 49152) * 8, torch.randn(2, 49152)  # flat rows need the whole sort
    middling = torch.zeros(2, 49152)
    middling[:, :1000] = 10 + 0.01 * torch.randn(2, 1000)  # about 1000 likely tokens: more than 256, under 4096
    scores = torch.cat([peaked, middling, flat])
    ids = torch.zeros(10, 1, dtype=torch.long)
    expected = TemperatureLogitsWarper(temperature)(ids, scores)
    if top_p < 1.0:
        expected = TopPLogitsWarper(top_p)(ids, expected)
    ours = TemperatureNucleus(temperature, top_p)(ids, scores)
    # A token whose mass ranked above it is within float32 rounding of top_p is a tie either side may keep
    # (transformers' sort-and-cumsum and ours round differently there); every other token must agree.
    probabilities = (scores.double() / temperature).softmax(-1)
    order = probabilities.argsort(-1, descending=True)
    above = probabilities.gather(-1, order).cumsum(-1) - probabilities.gather(-1, order)
    tie = torch.zeros_like(scores, dtype=torch.bool).scatter(-1, order, (above - top_p).abs() < 1e-4)
    assert torch.equal(ours.isinf()[~tie], expected.isinf()[~tie])
    both = ~ours.isinf() & ~expected.isinf()
    assert torch.allclose(ours[both], expected[both])
    kept = (~ours.isinf()).sum(-1)
    if top_p < 1.0:
        assert kept[:6].max() < 256 < kept[6:8].min() <= kept[6:8].max() < 4096 < kept[8:].min()  # each path
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


def test_packed_linears_compute_what_the_model_computes_with_and_without_its_adapter(tiny_model):
    from peft import LoraConfig, get_peft_model

    from traitloop.generate._packed import packed_linears
    from traitloop.models import load_model

    model = get_peft_model(load_model(str(tiny_model)), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    for name, weight in model.named_parameters():
        if "lora_B" in name:
            weight.data.normal_(std=0.1)  # a trained adapter: B is no longer zero
    model.eval()
    ids = torch.randint(0, 1000, (3, 7), generator=torch.Generator().manual_seed(0))

    def replaced() -> int:
        return sum("forward" in m.__dict__ for m in model.modules())

    with torch.inference_mode():
        adapted = model(ids).logits
        with model.disable_adapter():
            base = model(ids).logits
        assert (adapted - base).abs().max() > 0.01  # the adapter changes the answer
        with packed_linears(model, batch_size=3):
            assert replaced() == 2 * 7 + 1  # each layer's 7 LoRA-wrapped projections, and the LM head
            packed = model(ids).logits
        with model.disable_adapter(), packed_linears(model, batch_size=3):
            packed_base = model(ids).logits
        assert replaced() == 0
        after = model(ids).logits
    torch.testing.assert_close(packed, adapted, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(packed_base, base, atol=1e-4, rtol=1e-4)
    assert torch.equal(after, adapted)


def test_the_shared_prefix_leaves_every_prompt_a_token_of_its_own():
    from traitloop.generate._local import shared_prefix_length

    assert shared_prefix_length([[1, 2, 3], [1, 2, 4, 5]]) == 2
    assert shared_prefix_length([[1, 2], [1, 2, 3]]) == 1
    assert shared_prefix_length([[7, 8, 9], [7, 8, 9]]) == 2
    assert shared_prefix_length([[5], [5]]) == 0
    assert shared_prefix_length([[1, 2], [3, 2]]) == 0


def test_a_batch_runs_its_shared_prefix_once_and_the_model_sees_the_same_logits(tiny_model):
    """The chat template's system turn, prefilled once and cached, with the pads between it and each prompt:
    every generated step's logits match those of the plainly left-padded batch."""
    from traitloop.generate._local import SHARED_PREFIX_MIN
    from traitloop.models import load_model, load_tokenizer

    model, tokenizer = load_model(str(tiny_model)), load_tokenizer(str(tiny_model))
    generator = LocalGenerator(model, tokenizer)
    questions = ("Tell me a long story about the sea", "Hi", "Why not?")
    batch = [tokenizer(generator._render([{"role": "user", "content": q}]), add_special_tokens=False)["input_ids"]
             for q in questions]  # fmt: skip
    shared = generator._inputs(batch)
    assert shared["cache"].get_seq_length() >= SHARED_PREFIX_MIN
    plain = tokenizer.pad({"input_ids": batch}, return_tensors="pt", padding=True)

    def logits(inputs) -> tuple[torch.Tensor, ...]:
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=4, do_sample=False, output_logits=True,
                                 return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        return out.logits

    for step_shared, step_plain in zip(logits(shared), logits(plain), strict=True):
        torch.testing.assert_close(step_shared, step_plain, atol=1e-4, rtol=1e-4)
