"""``trait validate`` and ``trait list``: what a trait folder holds, how well its data separate, and every
problem in it named with file and line, all in one pass (a run stops at the first; this reports them all)."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from traitloop._progress import Progress, Step
from traitloop.author._near import near_duplicates
from traitloop.errors import UserError
from traitloop.io import read_yaml
from traitloop.judge import JUDGE_VERSION, Item, classifier_judge, embed, fit_digest, negatives
from traitloop.traits import (
    ANCHOR_SCORES,
    DATA_DIR,
    NARROW,
    TraitSpec,
    builtin_traits,
    conversation_of,
    exact_duplicates,
    load_conversations,
    load_prompt_pool,
    load_trait,
    normal_form,
    spec_problems,
)

CONVERSATION_FILES = ("seed", "contrast", "holdout")
NEAR = 0.9  # cosine at or above which an eval question is a near duplicate of a training prompt
RECOMMENDED_ANCHORS = 3


def trait_file(target: str | Path) -> Path:
    """``trait.yaml`` of a built-in name, a folder or a spec path."""
    path = Path(target)
    if path.suffix in (".yaml", ".yml"):
        return path
    if path.is_dir():
        return path / "trait.yaml"
    if str(target) in builtin_traits():
        return DATA_DIR / str(target) / "trait.yaml"
    raise UserError(
        f"no trait at {target}: give a built-in name ({', '.join(builtin_traits())}), a folder or a trait.yaml"
    )


def _lines(node: yaml.Node, path: tuple = ()) -> dict[tuple, int]:
    """The line (1-based) each value of a YAML document starts on, by its path of keys and indices."""
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines.update(_lines(value, (*path, key.value)))
            lines[(*path, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_lines(item, (*path, index)))
    return lines


def _line_of(lines: dict[tuple, int], loc: tuple) -> int:
    """The line of ``loc`` (``eval_questions`` may be written as ``eval_suites.narrow``), or its nearest parent's."""
    if loc[:1] == ("eval_questions",) and ("eval_questions",) not in lines:
        loc = ("eval_suites", NARROW, *loc[1:])
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _spec(path: Path, problems: list[str]) -> tuple[TraitSpec | None, dict[tuple, int]]:
    try:
        data = read_yaml(path)
    except UserError as error:
        problems.append(str(error))
        return None, {}
    lines = _lines(yaml.compose(path.read_text(encoding="utf-8")) or yaml.ScalarNode("", ""))
    if not isinstance(data, dict):
        problems.append(f"{path}:1: expected a mapping of trait fields")
        return None, lines
    try:
        return TraitSpec.model_validate({**data, "path": path}), lines
    except ValidationError as error:
        for problem in error.errors():
            loc = tuple(problem["loc"])
            message = spec_problems(ValidationError.from_exception_data(error.title, [problem]))
            problems.append(f"{path}:{_line_of(lines, loc)}: {message}")
        return None, lines


def _conversations(path: Path, problems: list[str]) -> list[tuple[int, Any]]:
    """(line, conversation row) for every good line; each bad line is a problem, and reading goes on."""
    rows = []
    try:
        raw_lines = path.read_bytes().splitlines()
    except OSError as error:
        problems.append(f"{path}: cannot read ({error.strerror})")
        return []
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
            conversation_of(row, f"{path}:{number}")
        except UnicodeDecodeError:
            problems.append(f"{path}:{number}: not UTF-8 text")
        except UserError as error:
            problems.append(str(error))
        except (ValueError, RecursionError) as error:
            problems.append(f"{path}:{number}: not valid JSON ({str(error).split(':')[0]})")
        else:
            rows.append((number, row))
    if not rows and not problems:
        problems.append(f"{path}: no conversations found")
    return rows


def _question(row: dict[str, Any]) -> str:
    return next(m["content"] for m in reversed(row["messages"][:-1]) if m["role"] == "user")


def _auroc(spec: TraitSpec, holdout: list[dict], contrast: list[dict], progress: Progress) -> float | None:
    """AUROC of the embedded judge, fit as a run fits it (seed answers, anchors and the negatives every trait
    judge is fit against) but without the contrast answers, on held-out trait answers against contrast
    answers: both unseen."""
    if not holdout or not contrast:
        return None
    from sklearn.metrics import roc_auc_score

    seeds = [c.answer for c in load_conversations(spec.seed_path)]
    without = negatives(spec.name, set(seeds))
    texts = seeds + without + [a.answer for a in spec.anchors]
    targets = [1.0] * len(seeds) + [0.0] * len(without) + [a.score / 100 for a in spec.anchors]
    digest = fit_digest(JUDGE_VERSION, texts, targets)
    judge = classifier_judge(f"validate/{spec.name}@v{spec.version}/{digest}", texts, targets, progress)
    items = [Item(_question(r), r["messages"][-1]["content"]) for r in holdout + contrast]
    with progress.task("judging held-out and contrast answers", len(items)) as step:
        scores = [j.score or 0.0 for j in judge(items, step)]
    return round(float(roc_auc_score([1] * len(holdout) + [0] * len(contrast), scores)), 4)


def _overlaps(
    spec: TraitSpec, lines: dict[tuple, int], training: list[tuple[str, str]], problems: list[str], step: Step
) -> dict[str, dict[str, int]]:
    """Eval questions equal (by normal form) or near (embedding cosine >= NEAR) to a training prompt; each one
    a problem naming the question's line and the prompt's place."""
    found: dict[str, dict[str, int]] = {}
    places, prompts = [p for p, _ in training], [t for _, t in training]
    index = {normal_form(t): p for p, t in training}
    for suite, questions in spec.suites.items():
        exact = [normal_form(q) in index for q in questions]
        near = near_duplicates(questions, NEAR, prompts)  # flags equal ones too
        found[suite] = {"exact": sum(exact), "near": sum(n and not e for n, e in zip(near, exact, strict=True))}
        key = ("eval_questions",) if suite == NARROW else ("eval_suites", suite)
        for i, question in enumerate(questions):
            if exact[i] or near[i]:
                where = index.get(normal_form(question)) or _nearest(question, prompts, places)
                kind = "is the same as" if exact[i] else "is a near duplicate of"
                problems.append(
                    f"{spec.path}:{_line_of(lines, (*key, i))}: eval question {question!r} ({suite}) {kind} the "
                    f"training prompt at {where}"
                )
        step(len(questions))
    return found


def _nearest(question: str, prompts: list[str], places: list[str]) -> str:
    return places[int((embed(prompts) @ embed([question])[0]).argmax())]


def validate_trait(
    target: str | Path,
    pool: str | Path | None = None,
    pool_field: str | None = None,
    judge: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Everything ``trait validate`` reports for a trait folder: counts per file and category, anchors per
    level, eval-suite sizes and their overlap with seed and pool prompts, the judge's AUROC, and problems; the
    long steps (the overlap check, the judge's fit and its judging) show their progress in ``progress``."""
    progress = progress or Progress.silent()
    start = time.perf_counter()
    path = trait_file(target)
    problems: list[str] = []
    warnings: list[str] = []
    spec, lines = _spec(path, problems)
    report: dict[str, Any] = {"trait": str(path), "files": {}, "categories": {}}
    rows: dict[str, list[tuple[int, Any]]] = {}
    for name in CONVERSATION_FILES:
        file = path.parent / f"{name}.jsonl"
        if not file.is_file():
            (problems if name == "seed" else warnings).append(f"{file}: missing")
            continue
        rows[name] = _conversations(file, problems)
        report["files"][f"{name}.jsonl"] = len(rows[name])
        report["categories"][f"{name}.jsonl"] = dict(Counter(r.get("category", "(none)") for _, r in rows[name]))
        questions = [_question(r) for _, r in rows[name]]
        for (number, _), repeated in zip(rows[name], exact_duplicates(questions), strict=True):
            if repeated:
                warnings.append(f"{file}:{number}: the same question as an earlier line")
    if spec is not None:
        report.update(name=spec.name, version=spec.version, content_hash=spec.content_hash())
        report["anchors"] = {str(s): sum(a.score == s for a in spec.anchors) for s in ANCHOR_SCORES}
        for score, count in report["anchors"].items():
            if count < RECOMMENDED_ANCHORS:
                warnings.append(f"{path}: {count} anchor(s) at {score}; {RECOMMENDED_ANCHORS} or more recommended")
        report["suites"] = {k: len(v) for k, v in spec.suites.items()}
        training = [(f"{path.parent / (n + '.jsonl')}:{line}", _question(r)) for n in rows for line, r in rows[n]]
        try:
            pool_prompts = load_prompt_pool(pool, pool_field)
        except UserError as error:
            problems.append(str(error))
            pool_prompts = []
        training += [(f"prompt pool ({pool or 'built-in'}) item {i + 1}", p) for i, p in enumerate(pool_prompts)]
        asked = sum(len(questions) for questions in spec.suites.values())
        with progress.task(f"checking eval questions against {len(training)} prompts", asked) as step:
            report["overlap"] = _overlaps(spec, lines, training, problems, step)
        if judge and "seed" in rows and not problems:
            holdout = [r for _, r in rows.get("holdout", [])]
            contrast = [r for _, r in rows.get("contrast", [])]
            report["auroc_holdout_vs_contrast"] = _auroc(spec, holdout, contrast, progress)
    report.update(problems=problems, warnings=warnings, seconds=round(time.perf_counter() - start, 1))
    return report


def default_output(target: str | Path) -> Path:
    """``validation.json`` in the trait's folder; for a built-in trait (inside the package), in this folder."""
    folder = trait_file(target).parent
    return Path(f"validation-{folder.name}.json") if folder.parent == DATA_DIR else folder / "validation.json"


def trait_rows(folders: list[Path] | None = None) -> list[dict[str, Any]]:
    """One row per built-in trait and per folder given: name, version, sizes, suites, SDF, content hash."""
    rows = []
    for target in [*builtin_traits(), *(folders or [])]:
        path = trait_file(target)
        spec = load_trait(path)
        sizes = {}
        for name in (*CONVERSATION_FILES, "sdf_seed"):
            file = path.parent / f"{name}.jsonl"
            sizes[name] = sum(1 for line in file.read_bytes().splitlines() if line.strip()) if file.is_file() else 0
        rows.append(
            {
                "name": spec.name,
                "version": spec.version,
                "where": "built-in" if path.parent.parent == DATA_DIR else str(path.parent),
                **sizes,
                "suites": {k: len(v) for k, v in spec.suites.items()},
                "sdf": (path.parent / "sdf.yaml").is_file(),
                "hash": spec.content_hash(),
            }
        )
    return rows
