"""The ``traitloop`` command line: run | status | eval | judge | report | verdict | sweep | calibrate | trait | pool |
models; thin calls into the API."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from traitloop.config import apply_overrides, default_run_folder
from traitloop.errors import UserError
from traitloop.io import read_yaml
from traitloop.loop._lock import refuse_if_held

if TYPE_CHECKING:
    from types import ModuleType

    from traitloop.analysis import RunVerdict, Thresholds
    from traitloop.sweep import RunOutcome

app = typer.Typer(help="Does self-training amplify a behavioural trait?", no_args_is_help=True)
models_app = typer.Typer(help="Models traitloop can use without a model hub.", no_args_is_help=True)
app.add_typer(models_app, name="models")
trait_app = typer.Typer(help="Write, check and list trait folders.", no_args_is_help=True)
app.add_typer(trait_app, name="trait")
pool_app = typer.Typer(help="Prompt pools: written by a generator, or imported from a file.", no_args_is_help=True)
app.add_typer(pool_app, name="pool")


class _RunByDefault(TyperGroup):
    """``traitloop sweep SWEEP.yaml`` means ``traitloop sweep run SWEEP.yaml``; ``sweep status`` stays a command."""

    def resolve_command(self, ctx, args):  # noqa: ANN001, ANN201 - click's signature
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().resolve_command(ctx, args)


sweep_app = typer.Typer(
    cls=_RunByDefault, help="Grids over experiment settings, run locally or on Ray.", no_args_is_help=True
)
app.add_typer(sweep_app, name="sweep")
console = Console()


def _api() -> ModuleType:
    """The API, imported when a command runs: it loads torch and transformers (seconds), which a command that
    can answer at once (a run folder another process holds) should not wait for."""
    from traitloop import api

    return api


def _default_output(config: Path, overrides: list[str]) -> Path:
    """The run folder a config names, read without validating it (validation comes with the run)."""
    try:
        data = apply_overrides(read_yaml(config) or {}, overrides)
    except (UserError, AttributeError, TypeError, ValueError):
        data = {}
    name = data.get("name") if isinstance(data, dict) else None
    return default_run_folder(name if isinstance(name, str) else None)


def _fail(error: UserError) -> None:
    console.print(f"[red]error:[/] {error}", highlight=False)
    raise typer.Exit(2)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Experiment config (YAML).")],
    set_: Annotated[list[str], typer.Option("--set", help="Override a field: --set cycles=4")] = [],  # noqa: B006
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Run folder (default runs/NAME).")] = None,
    force: Annotated[bool, typer.Option(help="Redo from the first cycle a changed config affects.")] = False,
) -> None:
    """Run an experiment, or resume it where it stopped."""
    try:
        refuse_if_held(output or _default_output(config, set_))
        folder = _api().run(config, output=output, overrides=set_, force=force, console=console)
    except UserError as error:
        _fail(error)
    console.print(f"done: {folder}")


@app.command()
def status(run_dir: Annotated[Path, typer.Argument(help="A run folder.")]) -> None:
    """Which stages of a run are done, with each generation's trait and coherence."""
    try:
        rows = _api().status(run_dir)
    except UserError as error:
        _fail(error)
    table = Table(title=str(run_dir))
    for column in ("cycle", "data", "train", "eval", "trait [95% CI]", "coherence", "trained on"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[key]) for key in ("cycle", "data", "train", "eval", "trait", "coherence", "trained")))
    console.print(table)


@app.command("eval")
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    questions: Annotated[Path | None, typer.Option(help="Questions: JSONL, a JSON list, CSV or Parquet.")] = None,
    name: Annotated[str | None, typer.Option(help="Name of this eval set (its folder under evals/).")] = None,
    suite: Annotated[str | None, typer.Option(help="Or one of the trait's eval suites, e.g. broad.")] = None,
    generations: Annotated[str, typer.Option(help="'all', or a list such as base,0,3.")] = "all",
    contexts: Annotated[
        str, typer.Option(help="Contexts to ask in, comma-separated: none, neutral_system, multi_turn, ...")
    ] = "none",
    force: Annotated[bool, typer.Option(help="Redo an eval set made with other questions or settings.")] = False,
) -> None:
    """Evaluate finished generations on new questions or contexts, without retraining."""
    try:
        folder = _api().evaluate(
            run_dir, questions, name, generations, [c.strip() for c in contexts.split(",") if c.strip()], force,
            console=console, suite=suite,
        )  # fmt: skip
    except UserError as error:
        _fail(error)
    console.print(f"done: {folder}")


@app.command()
def judge(
    trait: Annotated[str, typer.Option(help="Built-in trait name or trait YAML path.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="JSONL: chat conversations or question/answer.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write the scored rows.")] = None,
    model: Annotated[str, typer.Option(help="Base model for the embedded coherence judge.")] = "smollm2-135m-instruct",
    judge_: Annotated[
        str, typer.Option("--judge", help="Judges, comma-separated: embedded | openai:MODEL@URL.")
    ] = "embedded",
    api_key_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the server judges' API key.")
    ] = None,
    agreement: Annotated[bool, typer.Option(help="Compare the judges: Spearman, MAD, Bland-Altman bias.")] = False,
) -> None:
    """Score answers for trait strength and coherence (0-100); rows keep their order."""
    judges = [j for j in judge_.split(",") if j.strip()]
    try:
        if agreement:
            results = _api().judge_agreement(trait, input, judges, output, model=model, api_key_env=api_key_env)
        elif output is None:
            raise UserError("--output is needed to write the scores (or pass --agreement to compare judges)")
        else:
            count = _api().judge_file(trait, input, output, model=model, judges=judges, api_key_env=api_key_env)
    except UserError as error:
        _fail(error)
    if not agreement:
        console.print(f"scored {count} rows into {output}")
        return
    table = Table(title=f"judge agreement on {input}")
    for column in ("measure", "judge A", "judge B", "n", "Spearman", "mean |A-B|", "bias A-B", "95% limits"):
        table.add_column(column)
    for r in results:
        limits = "" if r.loa_low is None else f"[{r.loa_low:.1f}, {r.loa_high:.1f}]"
        cells = [_cell(r.spearman, ".3f"), _cell(r.mean_abs_diff, ".1f"), _cell(r.bias, "+.1f"), limits]
        table.add_row(r.measure, r.judge_a, r.judge_b, str(r.n), *cells)
    console.print(table)
    if output is not None:
        console.print(f"scored rows written to {output}")


def _thresholds(
    delta: float, slope: float, late_cycle: int, trait_at_least: float, coherence_at_least: float
) -> Thresholds:
    """The verdict's thresholds from the options ``report`` and ``verdict`` share."""
    from traitloop.analysis import Thresholds

    return Thresholds(
        delta=delta,
        slope=slope,
        late_cycle=late_cycle,
        trait_at_least=trait_at_least,
        coherence_at_least=coherence_at_least,
    )


def _cell(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


Delta = Annotated[float, typer.Option(help="Points the trait must rise to count as amplified.")]
Slope = Annotated[float, typer.Option(help="Mean prefix slope (points/cycle) that counts as amplified.")]
LateCycle = Annotated[int, typer.Option(help="First cycle test (c) looks at.")]
TraitAtLeast = Annotated[float, typer.Option(help="Thresholded rate: an answer counts with trait >= this.")]
CoherenceAtLeast = Annotated[float, typer.Option(help="Thresholded rate: ... and coherence >= this.")]


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(help="One run folder, or several to compare.")],
    compare: Annotated[bool, typer.Option(help="Side-by-side report even for one run.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="HTML file to write.")] = None,
    delta: Delta = 15.0,
    slope: Slope = 1.67,
    late_cycle: LateCycle = 4,
    trait_at_least: TraitAtLeast = 50.0,
    coherence_at_least: CoherenceAtLeast = 50.0,
) -> None:
    """Write an HTML report with the verdict, statistics, plots and a sample browser."""
    thresholds = _thresholds(delta, slope, late_cycle, trait_at_least, coherence_at_least)
    try:
        written = _api().report(runs, output=output, compare=compare, thresholds=thresholds)
    except UserError as error:
        _fail(error)
    for verdict in [*written.comparison.runs, *written.comparison.eval_sets]:
        where = "" if verdict.eval_set is None else f" on {verdict.eval_set}"
        console.print(f"{verdict.run}{where}: [bold]{verdict.verdict}[/]", highlight=False)
    console.print(f"report: {written.html}\nplots: {written.plots[0].parent}\ntable: {written.table}")


@app.command()
def verdict(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    json_: Annotated[bool, typer.Option("--json", help="Print the full verdict as JSON.")] = False,
    delta: Delta = 15.0,
    slope: Slope = 1.67,
    late_cycle: LateCycle = 4,
    trait_at_least: TraitAtLeast = 50.0,
    coherence_at_least: CoherenceAtLeast = 50.0,
    eval_set: Annotated[
        str | None,
        typer.Option("--eval-set", help="The verdict on this eval set (e.g. broad, broad@multi_turn) in full."),
    ] = None,
) -> None:
    """Did the trait amplify, decay or stay put? Each test with its value and threshold, and the paired tests;
    then one line per other eval set (suite, context, question file) the run's generations were asked."""
    thresholds = _thresholds(delta, slope, late_cycle, trait_at_least, coherence_at_least)
    try:
        result = _api().verdict(run_dir, thresholds, eval_set)
        others = [] if eval_set else _api().eval_set_verdicts(run_dir, thresholds)
    except UserError as error:
        _fail(error)
    if json_:
        print(result.model_dump_json(indent=2))
        return
    where = "" if eval_set is None else f" on eval set {eval_set}"
    table = Table(title=f"{result.run} ({result.setting}){where}: {result.verdict}")
    for column in ("test", "value", "threshold", "passed"):
        table.add_column(column)
    for test in result.amplification_tests + result.decay_tests:
        value = "n/a" if test.value is None else f"{test.value:.2f}"
        table.add_row(test.name, value, f"{test.threshold:g}", {True: "yes", False: "no", None: "n/a"}[test.passed])
    console.print(table)
    paired = Table(title="paired tests over questions (trait, Wilcoxon signed-rank, Holm-corrected)")
    for column in ("gen", "vs", "n", "mean diff [95% CI]", "r_rb", "p", "Holm p"):
        paired.add_column(column, no_wrap=True)
    for t in result.paired_tests:
        difference = (
            "n/a" if t.mean_difference is None else f"{t.mean_difference:.1f} [{t.ci_low:.1f}, {t.ci_high:.1f}]"
        )
        p_values = [_cell(t.p_value, ".2g"), _cell(t.p_holm, ".2g")]
        paired.add_row(
            str(t.generation),
            t.reference.replace("generation", "gen").removesuffix(" model"),
            str(t.n_questions),
            difference,
            _cell(t.rank_biserial, ".2f"),
            *p_values,
        )
    console.print(paired)
    if others:
        console.print(_eval_sets_table(others))


def _eval_sets_table(verdicts: list[RunVerdict]) -> Table:
    """One line per eval set: its verdict, the trait of the base model, generation 0 and the last generation,
    and the last generation's paired test against generation 0."""
    from traitloop.analysis._analyze import evaluated_generations

    table = Table(title="other eval sets (traitloop verdict --eval-set NAME for one in full)")
    for column in ("eval set", "generations", "verdict", "trait: base / gen 0 / last", "last - gen 0 (Holm p)"):
        table.add_column(column)
    for v in verdicts:
        by_cycle = {row["cycle"]: row for row in v.cycles if row["n_answers"]}
        last = v.cycles[-1] if v.cycles[-1]["cycle"] is not None else {}
        means = " / ".join(
            _cell((row or {}).get("trait_mean"), ".1f") for row in (by_cycle.get(None), by_cycle.get(0), last)
        )
        test = next((t for t in reversed(v.paired_tests) if t.reference == "generation 0"), None)
        change = "n/a" if test is None or test.mean_difference is None else (
            f"{test.mean_difference:+.1f} ({_cell(test.p_holm, '.2g')})"
        )  # fmt: skip
        table.add_row(v.eval_set, evaluated_generations(v), v.verdict, means, change)
    return table


@models_app.command("list")
def models_list() -> None:
    """Built-in models and whether they are converted in the cache."""
    table = Table()
    for column in ("name", "cached", "source"):
        table.add_column(column)
    for name, cached, description in _api().list_models():
        table.add_row(name, "yes" if cached else "no", description)
    console.print(table)


@models_app.command("pull")
def models_pull(name: Annotated[str, typer.Argument(help="A built-in model name.")]) -> None:
    """Fetch and convert a built-in model into the cache now."""
    try:
        path = _api().pull_model(name)
    except UserError as error:
        _fail(error)
    console.print(f"{name}: {path}")


def _band(text: str) -> tuple[float, float]:
    low, sep, high = text.partition("-")
    try:
        return float(low), float(high)
    except ValueError:
        raise typer.BadParameter(f"expected LOW-HIGH such as 40-60, got '{text}'") from None


@app.command()
def calibrate(
    config: Annotated[Path, typer.Argument(help="Experiment config (YAML).")],
    target: Annotated[str, typer.Option(help="Band generation 0's trait mean should reach, LOW-HIGH.")] = "40-60",
    low: Annotated[int, typer.Option(help="Fewest seed conversations to try.")] = 1,
    high: Annotated[int | None, typer.Option(help="Most seed conversations to try (default: all).")] = None,
    max_probes: Annotated[int, typer.Option(help="Most probe runs to train.")] = 8,
    set_: Annotated[list[str], typer.Option("--set", help="Override a field: --set seed=1")] = [],  # noqa: B006
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Sweep folder (default sweeps/NAME).")] = None,
) -> None:
    """Binary-search seed_examples so that cycle 0's trait mean lands in the target band."""
    try:
        result = _api().calibrate(config, _band(target), output, low, high, max_probes, set_, console)
    except UserError as error:
        _fail(error)
    table = Table(title=f"calibration for trait mean {target}")
    for column in ("seed_examples", "trait [95% CI]", "reused"):
        table.add_column(column)
    for probe in sorted(result.probes, key=lambda p: p.seed_examples):
        ci = f"{probe.trait_mean:.1f} [{probe.ci_low:.1f}, {probe.ci_high:.1f}]"
        table.add_row(str(probe.seed_examples), ci, "yes" if probe.reused else "")
    console.print(table)
    found = "in the band" if result.in_band else "closest to the band (none reached it)"
    console.print(f"seed_examples: {result.seed_examples} ({found}); written to {result.file}", highlight=False)


@sweep_app.command("run")
def sweep_run(
    sweep: Annotated[Path, typer.Argument(help="Sweep YAML, or a sweep folder to re-run.")],
    executor: Annotated[str, typer.Option(help="local (one run after another) or ray.")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address; default: start a local Ray.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Sweep folder (default sweeps/NAME).")] = None,
) -> None:
    """Run every run of a sweep; finished runs are skipped, unfinished ones resumed, failures reported."""

    def report(outcome: RunOutcome) -> None:
        detail = f": {outcome.error}" if outcome.error else f" ({outcome.seconds:.0f} s)" if outcome.seconds else ""
        console.print(f"{outcome.status:>7}  {outcome.name}{detail}", highlight=False)

    try:
        outcomes = _api().sweep(sweep, executor=executor, address=address, output=output, on_outcome=report)
    except UserError as error:
        _fail(error)
    failed = [o for o in outcomes if o.status == "failed"]
    console.print(f"{len(outcomes) - len(failed)} of {len(outcomes)} runs finished", highlight=False)
    if failed:
        raise typer.Exit(1)


@sweep_app.command("status")
def sweep_status(sweep: Annotated[Path, typer.Argument(help="Sweep folder or sweep YAML.")]) -> None:
    """One row per run (named by its grid values): state, stages done, last trait mean with CI, verdict."""
    try:
        rows = _api().sweep_status(sweep)
    except UserError as error:
        _fail(error)
    table = Table(title=str(sweep))
    for column in ("run", "state", "stages", "trait [95% CI] @cycle", "verdict", "error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        error = row["error"].splitlines()[0][:100] if row["error"] else ""
        table.add_row(row["run"], row["state"], row["stages"], row["trait"], row["verdict"], error)
    console.print(table)


Generator = Annotated[str, typer.Option(help="Who writes: local (the embedded model, offline) | openai:MODEL@URL.")]
ApiKeyEnv = Annotated[str | None, typer.Option(help="Environment variable holding the server's API key.")]
CachePath = Annotated[Path | None, typer.Option(help="Reply cache (SQLite; default: the judge cache).")]


@trait_app.command("new")
def trait_new(
    name: Annotated[str, typer.Argument(help="The trait's name (lower case, e.g. stoic).")],
    description: Annotated[str | None, typer.Option(help="The trait, in a paragraph.")] = None,
    from_: Annotated[Path | None, typer.Option("--from", help="A file holding the description.")] = None,
    generator: Generator = "local",
    judge: Annotated[str, typer.Option(help="Trait judge for filtering: embedded | openai:MODEL@URL.")] = "embedded",
    size: Annotated[int, typer.Option(min=8, help="Seed conversations to keep (a held-out split comes on top).")] = 300,
    seed_min: Annotated[
        float | None, typer.Option(min=0, max=100, help="Judge score a seed answer needs at least (50).")
    ] = None,
    contrast_max: Annotated[
        float | None, typer.Option(min=0, max=100, help="Judge score a contrast answer may have at most (30).")
    ] = None,
    sdf: Annotated[bool, typer.Option(help="Also write the SDF recipe and documents.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Trait folder (default traits/NAME).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing folder.")] = False,
    api_key_env: ApiKeyEnv = None,
    cache: CachePath = None,
    seed_file: Annotated[
        Path | None,
        typer.Option(
            help="Your seed conversations (chat JSONL, or a JSON, Parquet or CSV file): kept as they are; "
            "the rest is written around them."
        ),  # fmt: skip
    ] = None,
    seed_field: Annotated[str | None, typer.Option(help="The key or column of --seed-file holding the chat.")] = None,
    eval_questions: Annotated[
        Path | None, typer.Option(help="Your narrow eval questions (any pool file); topped up to 12 if fewer.")
    ] = None,
    max_rounds: Annotated[
        int | None, typer.Option(min=1, help="Rounds of asking again for what the filters removed, per set (5).")
    ] = None,
    max_requests: Annotated[
        int | None, typer.Option(min=1, help="Most requests in all, cached replies included (no limit).")
    ] = None,
) -> None:
    """Write a trait folder (spec, seed, contrast, held-out split, eval suites) from a description, or around
    your own seed conversations (--seed-file)."""

    def say(message: str) -> None:
        console.print(message, highlight=False)

    try:
        folder, report = _api().new_trait(
            name, description, from_file=from_, generator=generator, judge=judge, size=size, seed_min=seed_min,
            contrast_max=contrast_max, sdf=sdf, output=output, force=force, api_key_env=api_key_env, cache=cache,
            seed_file=seed_file, seed_field=seed_field, eval_questions=eval_questions, max_rounds=max_rounds,
            max_requests=max_requests, say=say,
        )  # fmt: skip
    except UserError as error:
        _fail(error)
    kept = ", ".join(f"{k} {v}" for k, v in report.kept.items())
    console.print(f"kept: {kept}\nrequests: {report.requests}; {report.seconds:.0f} s", highlight=False)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(f"written: {folder} (what each filter removed: {folder / 'authoring.json'})", highlight=False)


@trait_app.command("validate")
def trait_validate(
    trait: Annotated[str, typer.Argument(help="A trait folder, its trait.yaml, or a built-in name.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to save validation.json.")] = None,
    pool: Annotated[str | None, typer.Option(help="Prompt pool to check overlap against (default built-in).")] = None,
    pool_field: Annotated[str | None, typer.Option(help="The pool's prompt column or key.")] = None,
) -> None:
    """Counts, anchors, eval-suite overlap with training prompts, the judge's AUROC; every problem by file:line."""
    try:
        report, path = _api().validate_trait(trait, output, pool, pool_field)
    except UserError as error:
        _fail(error)
    table = Table(title=f"{report.get('name', trait)} v{report.get('version', '?')}")
    for column in ("measure", "value"):
        table.add_column(column)
    for file, count in report["files"].items():
        table.add_row(file, f"{count}  {report['categories'][file]}")
    for key in ("anchors", "suites", "overlap", "auroc_holdout_vs_contrast"):
        if key in report:
            table.add_row(key, str(report[key]))
    console.print(table)
    for warning in report["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    for problem in report["problems"]:
        console.print(f"[red]problem:[/] {problem}", highlight=False)
    console.print(f"{len(report['problems'])} problem(s); saved {path}", highlight=False)
    if report["problems"]:
        raise typer.Exit(1)


@trait_app.command("list")
def trait_list(folders: Annotated[list[Path] | None, typer.Argument(help="Your trait folders.")] = None) -> None:
    """Built-in traits and the folders given, with sizes and versions."""
    try:
        rows = _api().list_traits(folders or [])
    except UserError as error:
        _fail(error)
    table = Table()
    columns = ("name", "version", "where", "seed", "contrast", "holdout", "sdf_seed", "suites", "hash")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        row = {**row, "suites": ", ".join(f"{k} {v}" for k, v in row["suites"].items())}
        table.add_row(*(str(row[c]) for c in columns))
    console.print(table)


@pool_app.command("new")
def pool_new(
    output: Annotated[Path, typer.Option("--output", "-o", help="The pool file to write (JSONL).")],
    generator: Generator = "local",
    size: Annotated[int, typer.Option(min=1, help="Prompts to write.")] = 500,
    categories: Annotated[
        str | None, typer.Option(help="Comma-separated categories (default: the built-in 12).")
    ] = None,
    api_key_env: ApiKeyEnv = None,
    cache: CachePath = None,
) -> None:
    """Write a prompt pool with a generator, deduplicated and filtered, with its provenance beside it."""
    chosen = [c.strip() for c in categories.split(",") if c.strip()] if categories else None
    try:
        pool = _api().new_pool(output, generator, size, chosen, api_key_env, cache)
    except UserError as error:
        _fail(error)
    console.print(f"{len(pool.prompts)} prompts written to {output}; removed: {pool.removed}", highlight=False)


@pool_app.command("import")
def pool_import(
    source: Annotated[Path, typer.Argument(help="JSONL, JSON list, Parquet or CSV.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The pool file to write (JSONL).")],
    field: Annotated[str | None, typer.Option(help="The column or key holding the prompt.")] = None,
) -> None:
    """Filter any prompt file (English, length, personal data, code, duplicates) into a pool with provenance."""
    try:
        pool = _api().import_pool(source, output, field)
    except UserError as error:
        _fail(error)
    console.print(
        f"{len(pool.prompts)} of {pool.rows} prompts kept in {output}; removed: {pool.removed}", highlight=False
    )
