"""Progress of long work: a rich bar with an estimate on a terminal, a plain line now and then anywhere else."""

from __future__ import annotations

import re
import threading
from io import StringIO

from rich.console import Console
from rich.progress import MofNCompleteColumn, TimeElapsedColumn, TimeRemainingColumn

from traitloop import _progress
from traitloop._progress import Progress, bar_columns, clock
from traitloop.judge import Item, classifier_judge
from traitloop.traits import base_answers, load_conversations, load_trait


def plain() -> tuple[Progress, StringIO]:
    out = StringIO()
    return Progress(Console(file=out, force_terminal=False, width=200)), out


def test_a_log_gets_a_line_at_the_start_at_every_tenth_and_at_the_end():
    progress, out = plain()
    with progress.task("judging", 100) as step:
        for _ in range(100):
            step(1)
    lines = out.getvalue().splitlines()
    assert lines[0] == "judging: 0/100 (0%), 0:00:00"
    tenths = [re.match(r"judging: (\d+)/100", line).group(1) for line in lines[1:-1]]
    assert tenths == [str(10 * i) for i in range(1, 10)]  # the end has its own line
    assert re.fullmatch(r"judging: 10/100 \(10%\), 0:00:0\d elapsed, about 0:00:\d\d left", lines[1])
    assert lines[-1].startswith("judging: 100/100 (100%), ") and lines[-1].endswith(" in all")


def test_a_log_gets_a_line_after_a_while_without_one(monkeypatch):
    monkeypatch.setattr(_progress, "PLAIN_SECONDS", 0.0)
    progress, out = plain()
    with progress.task("writing", 1000) as step:
        step(1)
        step(2)
    lines = out.getvalue().splitlines()[1:3]
    assert [line.split(",")[0] for line in lines] == ["writing: 1/1000 (0%)", "writing: 3/1000 (0%)"]
    assert all(re.search(r"elapsed, about \d+:\d\d:\d\d left$", line) for line in lines)


def test_work_of_unknown_size_and_work_that_fails():
    progress, out = plain()
    with progress.task("training", None) as step:
        step.set_total_and_position(5, 20)
    assert out.getvalue().splitlines()[-1].startswith("training: 5/20 (25%)")
    progress, out = plain()
    try:
        with progress.task("judging", 4) as step:
            step(1)
            raise RuntimeError("server down")
    except RuntimeError:
        pass
    assert "in all" not in out.getvalue()  # a failure is not reported as finished


def test_counts_from_many_threads_add_up():
    progress, out = plain()
    with progress.task("requests", 800) as step:
        workers = [threading.Thread(target=lambda: [step(1) for _ in range(100)]) for _ in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert out.getvalue().splitlines()[-1].startswith("requests: 800/800 (100%)")


def test_the_bar_shows_done_of_total_elapsed_and_an_estimate_and_nested_tasks_share_it():
    kinds = [type(column) for column in bar_columns()]
    assert {MofNCompleteColumn, TimeElapsedColumn, TimeRemainingColumn} <= set(kinds)
    out = StringIO()
    progress = Progress(Console(file=out, force_terminal=True, force_interactive=True, width=120))
    with progress.task("evaluating", 10) as outer:
        outer(4)
        with progress.task("trait judge", 3) as inner:
            inner(3)
            bar = progress._bar
            assert [task.description for task in bar.tasks] == ["evaluating", "trait judge"]
            assert [task.completed for task in bar.tasks] == [4, 3]
        assert progress._bar is bar and [task.description for task in bar.tasks] == ["evaluating"]
    assert progress._bar is None
    assert "4/10" in out.getvalue()


def test_silent_progress_says_nothing():
    with Progress.silent().task("judging", 3) as step:
        step(3)
        step.set_total_and_position(3, 3)


def test_clock():
    assert [clock(0), clock(59.6), clock(3725)] == ["0:00:00", "0:01:00", "1:02:05"]


def test_the_embedded_judge_reports_its_answers_as_it_judges_them(tmp_path, monkeypatch):
    """In batches: the counts it reports add up to the items, empty answers included."""
    monkeypatch.setenv("TRAITLOOP_CACHE", str(tmp_path))
    lucky = [c.answer for c in load_conversations(load_trait("lucky").seed_path)[:12]]
    texts, targets = lucky + base_answers("fit")[:12], [1.0] * 12 + [0.0] * 12
    judge = classifier_judge("embedded-trait/lucky@progress/0", texts, targets)
    heard: list[int] = []
    items = [Item("q", a) for a in (base_answers("holdout") * 2)[:70]] + [Item("q", " ")]
    judgements = judge(items, heard.append)
    assert heard == [64, 7] and len(judgements) == 71 and judgements[-1].score is None
