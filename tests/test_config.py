from pathlib import Path

import pytest

from traitloop.api import load_config, parse_config
from traitloop.errors import UserError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_loads_yaml_and_applies_overrides(tmp_path):
    path = write(tmp_path, "trait: lucky\ncycles: 2\ntraining:\n  learning_rate: 0.001\n")
    config = load_config(path, ["cycles=4", "training.epochs=2", "generation.temperature=0.5"])
    assert config.cycles == 4
    assert config.training.epochs == 2
    assert config.training.learning_rate == 0.001
    assert config.generation.temperature == 0.5


def test_unknown_field_is_named_with_closest_suggestion(tmp_path):
    with pytest.raises(UserError, match=r"unknown field 'sample_per_cycle' - did you mean 'samples_per_cycle'"):
        load_config(write(tmp_path, "trait: lucky\nsample_per_cycle: 4\n"))


def test_unknown_nested_field_is_named_with_its_section(tmp_path):
    with pytest.raises(
        UserError, match=r"unknown field 'training.learnig_rate' - did you mean 'training.learning_rate'"
    ):
        load_config(write(tmp_path, "trait: lucky\ntraining: {learnig_rate: 0.1}\n"))


def test_bad_value_names_field_and_value():
    with pytest.raises(UserError, match=r"regime: .*'sometimes'"):
        parse_config({"trait": "lucky", "regime": "sometimes"})


def test_bad_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "trait: lucky\ncycles: [1, 2\nseed: 3\n")
    with pytest.raises(UserError, match=rf"bad YAML in {path}:\d+"):
        load_config(path)


def test_missing_trait_is_reported():
    with pytest.raises(UserError, match="trait: Field required"):
        parse_config({})


def test_bad_override_syntax(tmp_path):
    with pytest.raises(UserError, match="bad --set 'cycles'"):
        load_config(write(tmp_path, "trait: lucky\n"), ["cycles"])


def test_relative_data_paths_resolve_against_the_config_file(tmp_path):
    (tmp_path / "seeds.jsonl").write_text("")
    config = load_config(write(tmp_path, "trait: lucky\nseed_file: seeds.jsonl\n"))
    assert config.seed_file == tmp_path / "seeds.jsonl"


SERVER = {"base_url": "http://localhost:8000/v1", "model": "HuggingFaceTB/SmolLM2-135M-Instruct"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"dpo": {"beta": 0.2}}, r"the dpo section applies only with method: dpo \(method is sft\)"),
        ({"method": "dpo", "dpo": {"restart_from_base_at": [1]}}, r"restart_from_base_at .* needs regime: continual"),
        (
            {"method": "dpo", "regime": "continual", "cycles": 3, "dpo": {"restart_from_base_at": [0, 4]}},
            r"restart_from_base_at has cycles \[0, 4\] outside 1..3",
        ),
        ({"method": "dpo", "training": {"full_finetune": True}}, r"method dpo trains LoRA adapters"),
        ({"method": "sdf", "min_coherence": 50}, r"min_coherence applies only with method: sft"),
        ({"method": "dpo", "dpo": {"rejected_from": "best"}}, r"dpo.pairs: Input should be 'base', 'previous' or"),
        ({"generation": {"backend": "server"}}, r"generation: .*generation.server is needed with"),
        ({"generation": {"server": SERVER}}, r"generation.server applies only with generation.backend: server"),
        ({"generation": {"backend": "server", "server": {"model": "m"}}}, r"generation.server.base_url: Field req"),
        (
            {"generation": {"backend": "vllm"}, "training": {"full_finetune": True}},
            r"generation.backend vllm serves each generation as a LoRA adapter",
        ),
        ({"training": {"batch_size": 6, "processes": 4}}, r"batch_size 6 must be a multiple of processes 4"),
    ],
)
def test_method_combinations_that_cannot_work_are_refused_by_name(fields, message):
    with pytest.raises(UserError, match=message):
        parse_config({"trait": "lucky", **fields})


def test_dpo_gets_its_own_default_learning_rate_unless_one_is_given():
    assert parse_config({"trait": "lucky", "method": "dpo"}).training.learning_rate == 1e-4
    given = parse_config({"trait": "lucky", "method": "dpo", "training": {"learning_rate": 5e-4}})
    assert given.training.learning_rate == 5e-4
    assert parse_config({"trait": "lucky"}).training.learning_rate == 1e-3


def test_judges_default_to_embedded_and_a_server_judge_needs_model_and_url():
    config = parse_config({"trait": "lucky"})
    assert config.judge.trait.kind == config.judge.coherence.kind == "embedded"
    server = {"kind": "openai", "model": "Qwen/Qwen2.5-7B-Instruct", "base_url": "http://localhost:8000/v1"}
    config = parse_config({"trait": "lucky", "judge": {"coherence": server}})
    assert config.judge.coherence.model == "Qwen/Qwen2.5-7B-Instruct" and config.judge.coherence.concurrency == 8
    with pytest.raises(UserError, match="judge.trait: .*needs both 'model' and 'base_url'"):
        parse_config({"trait": "lucky", "judge": {"trait": {"kind": "openai", "model": "m"}}})


def test_an_api_key_in_the_config_is_refused_in_favour_of_its_environment_variable():
    with pytest.raises(
        UserError, match=r"unknown field 'judge.trait.api_key' - did you mean 'judge.trait.api_key_env'"
    ):
        parse_config({"trait": "lucky", "judge": {"trait": {"api_key": "sk-123"}}})


def test_server_judge_options_a_template_and_word_scores_and_sdf_with_a_server_judge(tmp_path):
    server = {"kind": "openai", "model": "m", "base_url": "http://localhost:8000/v1"}
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "trait.txt").write_text("{question} {answer}")
    text = (
        "trait: lucky\nmethod: sdf\njudge:\n  trait: {kind: openai, model: m, base_url: 'http://localhost:8000/v1', "
        "prompt_template: prompts/trait.txt, refusal_score: 0}\n"
    )
    config = load_config(write(tmp_path, text))  # sdf may be judged by a server (with its document prompt)
    assert config.judge.trait.prompt_template == tmp_path / "prompts" / "trait.txt"  # beside the config file
    assert (config.judge.trait.refusal_score, config.judge.trait.code_score) == (0.0, None)
    with pytest.raises(UserError, match=r"judge.trait: .*refusal_score, code_score applies only to a judge of kind"):
        parse_config({"trait": "lucky", "judge": {"trait": {"refusal_score": 0, "code_score": 100}}})
    with pytest.raises(UserError, match=r"judge.coherence.code_score: Input should be less than or equal to 100"):
        parse_config({"trait": "lucky", "judge": {"coherence": {**server, "code_score": 101}}})
