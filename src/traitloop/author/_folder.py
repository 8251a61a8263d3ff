"""``trait new``'s folder: every set written, judged and checked, then the folder written whole or not at all."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from traitloop._atomic import atomic_folder, atomic_write_json, atomic_write_text, write_jsonl
from traitloop._http import ServerUnavailable
from traitloop.author._author import Author, answer_of, question_of
from traitloop.author._rounds import AnswerSet, answer_rounds
from traitloop.author._scoring import embedded_rounds, judge_filter, server_scores
from traitloop.author._seedset import SeedSet, infer_description, read_seed_file
from traitloop.author._settings import RUBRIC, Report, Settings, check_description, check_name
from traitloop.author._writer import WEAK_NOTE, Writer
from traitloop.config import JudgeSpec
from traitloop.errors import UserError
from traitloop.judge import judge_kind
from traitloop.traits import ANCHOR_SCORES, NARROW, TraitSpec, load_prompt_pool, read_pool_file

MIN_EVAL_QUESTIONS = 12  # a trait's narrow suite holds at least this many


def spec_data(name: str, description: str, anchors: list[dict[str, Any]], suites: dict[str, list[str]]) -> dict:
    return {
        "name": name,
        "version": 1,
        "description": description,
        "rubric": RUBRIC.format(description=description),
        "anchors": [
            {"score": a["score"], "question": question_of(a), "answer": answer_of(a)}
            for a in sorted(anchors, key=lambda a: a["score"])
        ],
        "eval_suites": suites,
    }


def new_trait(
    name: str,
    description: str | None,
    writer: Writer,
    output: Path,
    *,
    judge: str = "embedded",
    judge_spec: JudgeSpec | None = None,
    settings: Settings | None = None,
    sdf: bool = False,
    force: bool = False,
    pool: Sequence[str] | None = None,
    seed_file: Path | None = None,
    seed_field: str | None = None,
    eval_questions: Path | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Report:
    """Write the trait folder ``output`` (``trait.yaml``, ``seed.jsonl``, ``contrast.jsonl``,
    ``holdout.jsonl``, ``authoring.json``; with ``sdf`` the SDF recipe and documents too) and return the
    report. The folder appears whole or not at all; every reply is cached, so a re-run pays only for what a
    killed or failed run never received.

    With ``seed_file`` the seed and held-out conversations are the user's own, kept as they are, and
    ``description`` may be None (the writer infers one from the seed answers); ``eval_questions`` (a pool
    file) gives the narrow eval suite, topped up by the writer to the minimum of 12.
    """
    check_name(name)
    judge_spec = judge_spec or JudgeSpec()
    if description is None and seed_file is None:
        raise UserError("give the trait's description with --description TEXT or --from FILE, or a --seed-file")
    if description is not None:
        description = check_description(name, description)
    if output.exists() and not force:
        raise UserError(f"{output} already exists; pass --force to replace it, or choose another --output")
    given = read_seed_file(seed_file, seed_field) if seed_file is not None else None
    questions = read_pool_file(eval_questions) if eval_questions is not None else None
    settings = settings or Settings()
    report = Report(writer.name, judge, {**settings.__dict__}, writer.backend.weak)
    if writer.backend.weak:
        say(f"note: {WEAK_NOTE}")
        report.notes.append(WEAK_NOTE)
    start = time.perf_counter()
    author = Author(name, description or "", writer, settings, report)
    pool = list(pool if pool is not None else load_prompt_pool())
    try:
        if description is None:
            assert given is not None
            author.description = infer_description(author, given)
            say(f"description inferred from the seed answers (check it; --description sets your own):\n  "
                f"{author.description}")  # fmt: skip
            report.notes.append(f"description inferred from the seed answers: {author.description}")
        files = _write_everything(author, judge_spec, pool, sdf, say, given, questions)
    except ServerUnavailable as error:
        raise UserError(
            f"{error.args[0].split(' Every')[0]} Every reply received so far is kept in the cache "
            f"({writer.cache.path}); start or fix the server and run the same command again: it pays only for "
            "what it never received."
        ) from None
    report.requests = writer.stats()
    report.seconds = round(time.perf_counter() - start, 1)
    for line in [*report.summary(), *(f"warning: {w}" for w in report.warnings)]:
        say(line)
    with atomic_folder(output, is_current=lambda _: False) as staging:
        for file_name, content in files.items():
            if isinstance(content, str):
                atomic_write_text(staging / file_name, content)
            else:
                write_jsonl(staging / file_name, content)
        atomic_write_json(staging / "authoring.json", report.__dict__)
    return report


def _write_everything(
    author: Author,
    judge_spec: JudgeSpec,
    pool: list[str],
    sdf: bool,
    say: Callable[[str], None],
    given: SeedSet | None,
    given_questions: list[str] | None,
) -> dict[str, Any]:
    s, report = author.settings, author.report
    levels = len(ANCHOR_SCORES) * s.anchors_per_level
    wanted = s.size + s.holdout if given is None else 0
    contrast_size = s.contrast if given is None else max(16, len(given.rows) // 3)
    user_questions = [question_of(r) for r in given.rows] if given else []
    say(f"writing questions: {f'{wanted} for seed answers, ' if wanted else ''}{contrast_size} for contrast, "
        f"{levels} for anchors")  # fmt: skip
    asked = author.questions("seed", math.ceil(1.3 * wanted) + contrast_size + 2 * levels, [*pool, *user_questions])
    random.Random(author._seed("questions")).shuffle(asked)  # every set gets every category
    anchor_questions = asked[: 2 * levels]
    contrast_questions, seed_questions = (
        asked[2 * levels : 2 * levels + contrast_size],
        asked[2 * levels + contrast_size :],
    )
    author.known = [*pool, *user_questions, *(q for q, _ in asked)]
    suites, needed = _suites(author, given_questions, say)
    author.known += [q for suite in suites.values() for q in suite]
    say("writing anchors")
    levels_sets = [AnswerSet(f"anchors at {score}", score, s.anchors_per_level,
                             anchor_questions[i * 2 * s.anchors_per_level : (i + 1) * 2 * s.anchors_per_level])
                   for i, score in enumerate(ANCHOR_SCORES)]  # fmt: skip
    answer_rounds(author, levels_sets)
    anchors = [{**row, "score": level.strength} for level in levels_sets for row in level.kept[: s.anchors_per_level]]
    _check_usable(author, suites, needed, anchors)
    contrast = AnswerSet("contrast", 0, contrast_size, contrast_questions)
    seeds = AnswerSet("seed", 100, wanted, seed_questions)
    say(f"writing {'' if given else f'{len(seed_questions)} seed answers and '}{len(contrast_questions)} contrast "
        f"answers, judged by the {report.judge} judge; more in rounds for what the filters remove")  # fmt: skip
    score = _scorer(author, judge_spec, anchors, suites, judge_seeds=given is None)
    user_rows = given.rows if given else []

    def settle() -> None:
        seed_scores, contrast_scores = score(user_rows or seeds.rows, contrast.rows)
        if given is None:
            seeds.kept = judge_filter(seeds.rows, seed_scores, lambda x: x >= s.seed_min, report.removed["seed"],
                                      f">= {s.seed_min:g}")  # fmt: skip
        contrast.kept = judge_filter(contrast.rows, contrast_scores, lambda x: x <= s.contrast_max,
                                     report.removed["contrast"], f"<= {s.contrast_max:g}")  # fmt: skip

    answer_rounds(author, [contrast] if given else [seeds, contrast], settle)
    files: dict[str, Any] = {"contrast.jsonl": contrast.kept[:contrast_size]}
    if given is None:
        kept = list(seeds.kept)
        random.Random(author._seed("split")).shuffle(kept)
        holdout = kept[: s.holdout]
        files.update({"seed.jsonl": kept[s.holdout : s.holdout + s.size], "holdout.jsonl": holdout})
    else:
        chosen, held = given.split(author._seed("split"))
        files.update({"seed.jsonl": "".join(given.lines[i] + "\n" for i in chosen),
                      "holdout.jsonl": "".join(given.lines[i] + "\n" for i in held)})  # fmt: skip
        report.seed_file = {"path": str(given.path), "conversations": len(given.rows), "seed": len(chosen),
                            "holdout": len(held), "converted to messages": given.converted}  # fmt: skip
    counts = {name: len(rows) if isinstance(rows, list) else rows.count("\n") for name, rows in files.items()}
    if not counts["seed.jsonl"] or not counts["contrast.jsonl"]:
        raise UserError(
            f"the generator's answers did not survive the filters ({counts['seed.jsonl']} seed, "
            f"{counts['contrast.jsonl']} contrast kept): {' '.join(report.warnings)} Every reply is cached, so a run "
            "again pays only for what it never received."
        )
    report.kept = {"seed": counts["seed.jsonl"], "holdout": counts["holdout.jsonl"],
                   "contrast": counts["contrast.jsonl"], "anchors": len(anchors),
                   **{f"eval {k}": len(v) for k, v in suites.items()}}  # fmt: skip
    spec = spec_data(author.name, author.description, anchors, suites)
    files["trait.yaml"] = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=110)
    if sdf:
        from traitloop.author._sdf import sdf_files  # the SDF part only when asked for

        files.update(sdf_files(author, say))
    return files


def _suites(
    author: Author, given: list[str] | None, say: Callable[[str], None]
) -> tuple[dict[str, list[str]], dict[str, int]]:
    """The narrow suite (written, or the user's questions, topped up to the minimum a trait needs) and the
    broad one; and the size each must have."""
    s = author.settings
    narrow: list[str] = list(given or [])
    needed = s.narrow if given is None else max(len(narrow), MIN_EVAL_QUESTIONS)
    if given is not None:
        say(f"eval suites: {len(given)} narrow questions given")
        if len(given) < MIN_EVAL_QUESTIONS:
            note = f"{len(given)} narrow eval questions given, fewer than the {MIN_EVAL_QUESTIONS} a trait needs: " \
                f"writing {MIN_EVAL_QUESTIONS - len(given)} more"  # fmt: skip
            say(note)
            author.report.notes.append(note)
    say(f"writing eval suites: {needed - len(narrow)} narrow, {s.broad} broad")
    narrow += [q for q, _ in author.questions(NARROW, needed - len(narrow), [*author.known, *narrow])]
    broad = [q for q, _ in author.questions("broad", s.broad, [*author.known, *narrow])]
    return {NARROW: narrow, "broad": broad}, {NARROW: needed, "broad": s.broad}


def _scorer(author: Author, judge_spec, anchors, suites, judge_seeds: bool):  # noqa: ANN001, ANN202
    """Scores of (seed rows, contrast rows) by a judge fit on the trait's own data (the embedded one:
    cross-fitted, so it needs the seed rows, the user's too, though they are never filtered), or by a judge that
    reads the draft trait (a server judge: the user's seed rows are not sent)."""
    kind = judge_kind(judge_spec)
    if kind.learns_from_trait:
        return embedded_rounds(author.name, anchors, author.writer.progress)
    draft = TraitSpec.model_validate({**spec_data(author.name, author.description, anchors, suites),
                                      "path": Path("trait.yaml")})  # fmt: skip
    server = server_scores(kind.trait_judge(judge_spec, draft, chat=True), author.writer.progress)

    def score(seeds: list[dict[str, Any]], contrast: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
        return server(seeds if judge_seeds else [], contrast, anchors)

    return score


def _check_usable(
    author: Author, suites: dict[str, list[str]], needed: dict[str, int], anchors: list[dict[str, Any]]
) -> None:
    """Stop, naming every shortfall, when what was written cannot make a trait a run accepts as asked."""
    s = author.settings
    short = [f"{name} suite: {len(suites[name])} of {n}" for name, n in needed.items() if len(suites[name]) < n]
    for score in ANCHOR_SCORES:
        have = sum(a["score"] == score for a in anchors)
        if have < s.anchors_per_level:
            short.append(f"anchors at {score}: {have} of {s.anchors_per_level}")
    if short:
        raise UserError(
            f"the generator {author.writer.name} could not write enough for trait '{author.name}': {'; '.join(short)} "
            f"(batches: {author.report.batches}). Every reply is cached, so nothing is paid twice: try a stronger "
            "--generator and run again"
        )
