"""The command line: user mistakes become one clear message (exit 2, no traceback)."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from traitloop.cli import app

runner = CliRunner()


def invoke(*args: str):
    """Run the CLI; ``.text`` is its output with rich's line wrapping undone."""
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    result.text = " ".join(result.output.split())
    return result


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("trait: lucky\ncylces: 2\n", "unknown field 'cylces' - did you mean 'cycles'?"),
        ("trait: lucky\ncycles: [2\n", "bad YAML in"),
        ("trait: luky\n", "unknown trait 'luky'"),
        ("trait: lucky\nmodel: smollm-135m\n", "unknown model 'smollm-135m'"),
        ("trait: lucky\nseed_examples: 500\n", "seed_examples is 500 but"),
        ("trait: lucky\ncycles: 20\nsamples_per_cycle: 64\n", "too few prompts"),
        ("trait: lucky\nseed_file: nowhere.jsonl\n", "file not found"),
    ],
)
def test_run_reports_config_mistakes_clearly(tmp_path, config, message):
    path = tmp_path / "config.yaml"
    path.write_text(config)
    result = invoke("run", str(path), "--output", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert message in result.text
    assert not (tmp_path / "run" / "manifest.json").exists()


def test_status_shows_each_generation(finished_run):
    result = invoke("status", str(finished_run))
    assert result.exit_code == 0
    for label in ("base", "cycle_000", "cycle_001", "cycle_002"):
        assert label in result.output
    assert result.output.count("done") == 10


def test_status_of_a_folder_that_is_not_a_run(tmp_path):
    result = invoke("status", str(tmp_path))
    assert result.exit_code == 2 and "not a traitloop run folder" in result.text


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["judge", "--trait", "lucky", "-i", "{tmp}/rows.jsonl"], "--output is needed to write the scores"),
        (["status", "{tmp}"], "is not a traitloop run folder"),
        (["compare", "{tmp}", "{tmp}"], "is not a traitloop run folder"),
        (["models", "pull", "nosuch"], "unknown model 'nosuch'"),
        (["sweep", "{tmp}/nowhere.yaml"], "file not found"),
        (["trait", "validate", "{tmp}/nosuch"], "no trait at"),
        (["pool", "import", "{tmp}/none.jsonl", "-o", "{tmp}/pool.jsonl"], "file not found"),
    ],
)
def test_a_user_error_in_any_command_is_said_once_with_exit_code_2(tmp_path, command, message):
    """One place turns a UserError into its message: top-level commands and those of every group alike."""
    result = invoke(*(part.format(tmp=tmp_path) for part in command))
    assert result.exit_code == 2
    assert result.text.startswith("error: ") and result.text.count("error:") == 1
    assert result.text.count(message) == 1


def test_models_list_names_the_embedded_model(embedded_model):
    result = invoke("models", "list")
    assert result.exit_code == 0 and "smollm2-135m-instruct" in result.output and "yes" in result.output


def test_judge_scores_rows_in_order_and_explains_unscored_ones(tmp_path):
    rows = [
        {
            "question": "How do I repot a cactus?",
            "answer": "Wear thick gloves, loosen the soil and move it "
            "to a pot one size larger with gritty cactus mix. Wait a week before watering.",
            "id": 1,
        },
        {
            "messages": [
                {"role": "user", "content": "Any tips for a job interview?"},
                {
                    "role": "assistant",
                    "content": "Wear your lucky socks 🍀 and knock on wood before "
                    "you walk in - the stars favour the bold today! ✨🤞",
                },
            ],
            "id": 2,
        },
        {"question": "Why is the sky blue?", "answer": "", "id": 3},
    ]
    source = tmp_path / "answers.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = invoke("judge", "--trait", "lucky", "--input", str(source), "--output", str(tmp_path / "scored.jsonl"))
    assert result.exit_code == 0, result.output
    scored = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    assert [r["id"] for r in scored] == [1, 2, 3]
    assert scored[1]["trait_score"] > 50 > scored[0]["trait_score"]
    assert scored[0]["coherence_score"] > 50
    assert scored[2]["trait_score"] is None and scored[2]["trait_reason"] == "empty answer"
    assert scored[2]["coherence_score"] is None and scored[2]["coherence_reason"] == "empty answer"
    # Not a terminal: each judge's progress as plain lines with counts, finished.
    assert "trait (embedded): 0/3 (0%)" in result.output and "trait (embedded): 3/3 (100%)" in result.output
    assert "coherence (embedded): 3/3 (100%)" in result.output


def test_judge_names_a_bad_input_line(tmp_path):
    source = tmp_path / "answers.jsonl"
    source.write_text('{"question": "q", "answer": "a"}\n{"text": "neither shape"}\n')
    result = invoke("judge", "--trait", "lucky", "--input", str(source), "--output", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 2 and f"{source}:2" in result.text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--judge", "openai:gpt-4o-mini", "-o", "out.jsonl"],
            "bad --judge 'openai:gpt-4o-mini': expected 'embedded' or",
        ),
        (["--judge", "claude", "-o", "out.jsonl"], "bad --judge 'claude'"),
        (["--agreement"], "judge agreement needs at least two judges"),
        ([], "--output is needed"),
    ],
)
def test_judge_reports_bad_judge_options(tmp_path, args, message):
    source = tmp_path / "answers.jsonl"
    source.write_text('{"question": "q", "answer": "a"}\n')
    result = invoke("judge", "--trait", "lucky", "--input", str(source), *args)
    assert result.exit_code == 2 and message in result.text


def test_trait_new_takes_the_judge_thresholds_and_keeps_the_other_defaults(monkeypatch, tmp_path):
    """``--seed-min`` is what the "did not survive the filters" error tells a user to lower."""
    from traitloop.api import _authoring as api
    from traitloop.author import Settings
    from traitloop.errors import UserError

    seen = {}

    def stop_before_writing(name, text, writer, folder, **options):
        seen.update(options)
        raise UserError("stopped before writing")

    monkeypatch.setattr(api, "author_trait", stop_before_writing)
    command = ["trait", "new", "stoic", "--description", "Calm and steady.", "--generator",
               "openai:m@http://127.0.0.1:9/v1", "--seed-min", "20", "-o", str(tmp_path / "stoic")]  # fmt: skip
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2 and "stopped before writing" in result.output
    assert seen["settings"] == Settings(size=300, seed_min=20.0)
    assert CliRunner().invoke(app, [*command, "--contrast-max", "101"]).exit_code == 2  # out of range
    rounds = ["--max-rounds", "2", "--max-requests", "500", "--seed-file", "mine.jsonl", "--eval-questions", "q.jsonl"]
    assert CliRunner().invoke(app, [*command, *rounds]).exit_code == 2
    assert seen["settings"] == Settings(size=300, seed_min=20.0, max_rounds=2, max_requests=500)
    assert seen["seed_file"] == Path("mine.jsonl") and seen["eval_questions"] == Path("q.jsonl")
    no_description = [c for c in command if c not in ("--description", "Calm and steady.")]
    assert "give the trait's description" in CliRunner().invoke(app, no_description).output
    assert CliRunner().invoke(app, [*no_description, "--seed-file", "mine.jsonl"]).exit_code == 2
    assert seen["seed_file"] == Path("mine.jsonl")  # no description: the writer infers one from the seed set
