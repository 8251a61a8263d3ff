"""Two chains tested against each other: does the seeded chain differ from its no-seed control at generation k,
or continual from reinit?

Both runs must have asked the same questions (the same eval set), so that generation k of one is compared with
generation k of the other question by question: the Wilcoxon signed-rank test on per-question means, the mean
difference (A − B) with a bootstrap CI over questions, and the matched-pairs rank-biserial correlation, for the
trait and for coherence. Each measure's p-values are Holm-corrected across the generations compared.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from traitloop.analysis._load import RunResults
from traitloop.analysis._paired import PairedTest, holm, paired_test
from traitloop.errors import UserError

COMPARED = ("trait", "coherence")


class BetweenRunsTest(PairedTest):
    """One measure at one generation, run A against run B (``reference``); ``mean_a`` and ``mean_b`` are each
    run's mean of per-question means over the questions both scored."""

    measure: str
    mean_a: float | None = None
    mean_b: float | None = None


class RunsCompared(BaseModel):
    """``traitloop compare``: run A against run B at every generation both have (or those asked for)."""

    run_a: str
    run_b: str
    folder_a: str
    folder_b: str
    eval_set: str | None
    n_questions: int
    generations: list[int | None]
    tests: list[BetweenRunsTest]


def _questions(run: RunResults) -> dict[int, str]:
    return dict(zip(run.evals["question_index"].astype(int), run.evals["question"].astype(str), strict=True))


def _evaluated(run: RunResults) -> list[int | None]:
    """The generations with answers, the base model (None) first where it was asked."""
    return ([None] if len(run.rows(None)) else []) + run.cycles


def check_same_questions(a: RunResults, b: RunResults) -> int:
    """The number of questions both asked; a UserError naming the first difference where they asked others."""
    asked_a, asked_b = _questions(a), _questions(b)
    if asked_a == asked_b:
        return len(asked_a)
    where = "" if a.eval_set is None else f" on eval set {a.eval_set!r}"
    first = min(set(asked_a) ^ set(asked_b) or {i for i in asked_a if asked_a[i] != asked_b[i]})
    shown = " / ".join(repr(asked.get(first, "(not asked)"))[:80] for asked in (asked_a, asked_b))
    raise UserError(
        f"{a.name} and {b.name} asked different questions{where} ({len(asked_a)} and {len(asked_b)}; question "
        f"{first}: {shown}); a paired test needs the same questions: compare them on an eval set both were asked "
        "(traitloop eval --questions FILE on both, then --eval-set NAME)"
    )


def compare_two_runs(
    a: RunResults, b: RunResults, generations: Sequence[int | None] | None = None
) -> RunsCompared:
    """Paired tests of A against B at each generation both have (``generations``: only these; ``None`` in it
    is the base model), for trait and coherence."""
    n_questions = check_same_questions(a, b)
    common = [c for c in _evaluated(a) if c in _evaluated(b)]
    chosen = [c for c in common if c is not None] if generations is None else list(generations)
    missing = [c for c in chosen if c not in common]
    if missing:
        names = ", ".join("base" if c is None else str(c) for c in missing)
        raise UserError(f"--generations {names}: not evaluated in both {a.name} and {b.name}")
    if not chosen:
        raise UserError(f"{a.name} and {b.name} have no evaluated generation in common")
    resamples, seed = a.config.evaluation.bootstrap_resamples, a.config.seed
    tests = []
    for measure in COMPARED:
        family = []
        for cycle in chosen:
            scores_a, scores_b = a.question_means(measure, cycle), b.question_means(measure, cycle)
            test = paired_test(cycle, b.name, scores_a, scores_b, resamples, seed)
            both = scores_a.index.intersection(scores_b.index)
            means = [round(float(s[both].mean()), 4) if len(both) else None for s in (scores_a, scores_b)]
            family.append(BetweenRunsTest(**test.model_dump(), measure=measure, mean_a=means[0], mean_b=means[1]))
        for test, adjusted in zip(family, holm([t.p_value for t in family]), strict=True):
            test.p_holm = adjusted
        tests += family
    return RunsCompared(
        run_a=a.name, run_b=b.name, folder_a=str(a.folder), folder_b=str(b.folder), eval_set=a.eval_set,
        n_questions=n_questions, generations=chosen, tests=tests,
    )  # fmt: skip
