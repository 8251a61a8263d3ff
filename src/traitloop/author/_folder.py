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
from traitloop.author._scoring import embedded_scores, judge_filter, server_scores
from traitloop.author._settings import RUBRIC, Report, Settings, check_description
from traitloop.author._writer import WEAK_NOTE, Writer
from traitloop.errors import UserError
from traitloop.judge import server_judge
from traitloop.traits import ANCHOR_SCORES, NARROW, TraitSpec, load_prompt_pool


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
    description: str,
    writer: Writer,
    output: Path,
    *,
    judge: str = "embedded",
    judge_spec=None,  # noqa: ANN001 - a JudgeSpec for a server judge
    settings: Settings | None = None,
    sdf: bool = False,
    force: bool = False,
    pool: Sequence[str] | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Report:
    """Write the trait folder ``output`` (``trait.yaml``, ``seed.jsonl``, ``contrast.jsonl``,
    ``holdout.jsonl``, ``authoring.json``; with ``sdf`` the SDF recipe and documents too) and return the
    report. The folder appears whole or not at all; every reply is cached, so a re-run pays only for what a
    killed or failed run never received."""
    description = check_description(name, description)
    if output.exists() and not force:
        raise UserError(f"{output} already exists; pass --force to replace it, or choose another --output")
    settings = settings or Settings()
    report = Report(writer.name, judge, {**settings.__dict__}, writer.backend.weak)
    if writer.backend.weak:
        say(f"note: {WEAK_NOTE}")
        report.notes.append(WEAK_NOTE)
    start = time.perf_counter()
    author = Author(name, description, writer, settings, report)
    pool = list(pool if pool is not None else load_prompt_pool())
    try:
        files = _write_everything(author, judge, judge_spec, pool, sdf, say)
    except ServerUnavailable as error:
        raise UserError(
            f"{error.args[0].split(' Every')[0]} Every reply received so far is kept in the cache "
            f"({writer.cache.path}); start or fix the server and run the same command again: it pays only for "
            "what it never received."
        ) from None
    report.requests = writer.stats()
    report.seconds = round(time.perf_counter() - start, 1)
    with atomic_folder(output, is_current=lambda _: False) as staging:
        for file_name, content in files.items():
            if file_name.endswith(".jsonl"):
                write_jsonl(staging / file_name, content)
            else:
                atomic_write_text(staging / file_name, content)
        atomic_write_json(staging / "authoring.json", report.__dict__)
    return report


def _write_everything(author: Author, judge: str, judge_spec, pool: list[str], sdf: bool, say) -> dict[str, Any]:  # noqa: ANN001
    s, report = author.settings, author.report
    levels = len(ANCHOR_SCORES) * s.anchors_per_level
    wanted = s.size + s.holdout
    say(f"writing questions: {wanted} for seed answers, {s.contrast} for contrast, {levels} for anchors")
    asked = author.questions("seed", math.ceil(1.3 * wanted) + s.contrast + 2 * levels, pool)
    random.Random(author._seed("questions")).shuffle(asked)  # every set gets every category
    anchor_questions, contrast_questions = asked[: 2 * levels], asked[2 * levels : 2 * levels + s.contrast]
    seed_questions = asked[2 * levels + s.contrast :]
    training = [q for q, _ in asked]
    say(f"writing eval suites: {s.narrow} narrow, {s.broad} broad")
    narrow = author.questions(NARROW, s.narrow, [*training, *pool])
    broad = author.questions("broad", s.broad, [*training, *pool, *(q for q, _ in narrow)])
    say("writing anchors")
    anchors: list[dict[str, Any]] = []
    for level_index, score in enumerate(ANCHOR_SCORES):
        candidates = anchor_questions[
            level_index * 2 * s.anchors_per_level : (level_index + 1) * 2 * s.anchors_per_level
        ]
        written = author.answers(candidates, score, f"anchors at {score}")[: s.anchors_per_level]
        anchors.extend({**row, "score": score} for row in written)
    say(f"writing {len(seed_questions)} seed answers and {len(contrast_questions)} contrast answers")
    seeds = author.answers(seed_questions, 100, "seed")
    contrast = author.answers(contrast_questions, 0, "contrast")
    suites = {NARROW: [q for q, _ in narrow], "broad": [q for q, _ in broad]}
    _check_usable(author, suites, anchors)
    say(f"judging with the {judge} judge")
    if judge_spec is None:
        seed_scores, contrast_scores = embedded_scores(author.name, seeds, contrast, anchors)
    else:
        draft = TraitSpec.model_validate(
            {**spec_data(author.name, author.description, anchors, suites), "path": Path("trait.yaml")}
        )
        seed_scores, contrast_scores = server_scores(server_judge(judge_spec, draft, "trait"))(seeds, contrast, anchors)
    seeds = judge_filter(seeds, seed_scores, lambda x: x >= s.seed_min, report.removed["seed"], f">= {s.seed_min:g}")
    contrast = judge_filter(contrast, contrast_scores, lambda x: x <= s.contrast_max, report.removed["contrast"],
                             f"<= {s.contrast_max:g}")  # fmt: skip
    random.Random(author._seed("split")).shuffle(seeds)
    holdout, seeds = seeds[: s.holdout], seeds[s.holdout : s.holdout + s.size]
    if len(seeds) < s.size:
        report.notes.append(f"seed: {len(seeds)} conversations kept of the {s.size} asked for (see removed)")
    if not seeds or not contrast:
        raise UserError(
            f"the generator's answers did not survive the filters ({len(seeds)} seed, {len(contrast)} contrast "
            f"kept; removed: {report.removed}). Every reply is cached: try a stronger --generator, or a lower "
            "--seed-min, and run again"
        )
    report.kept = {"seed": len(seeds), "holdout": len(holdout), "contrast": len(contrast), "anchors": len(anchors),
                   **{f"eval {k}": len(v) for k, v in suites.items()}}  # fmt: skip
    spec = spec_data(author.name, author.description, anchors, suites)
    files: dict[str, Any] = {
        "trait.yaml": yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=110),
        "seed.jsonl": seeds,
        "holdout.jsonl": holdout,
        "contrast.jsonl": contrast,
    }
    if sdf:
        from traitloop.author._sdf import sdf_files  # the SDF part only when asked for

        files.update(sdf_files(author, say))
    return files


def _check_usable(author: Author, suites: dict[str, list[str]], anchors: list[dict[str, Any]]) -> None:
    """Stop, naming every shortfall, when what was written cannot make a trait a run accepts as asked."""
    s = author.settings
    short = [f"{name} suite: {len(q)} of {n}" for (name, q), n in zip(suites.items(), (s.narrow, s.broad), strict=True)
             if len(q) < n]  # fmt: skip
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
