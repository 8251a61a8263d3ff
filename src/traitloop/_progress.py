"""Progress of long work, shown the same way by every command: on a terminal a rich bar (what is done, a bar,
items done of total, elapsed time and an estimate of the time left); anywhere else (a log file, CI) a plain
line now and then: at the start, at every tenth of the work or after ``PLAIN_SECONDS`` without a line,
whichever comes first, and at the end.

The work itself only calls the ``Step`` it is handed with how many more items are done (from any thread), so it
neither knows nor cares where the progress goes. Tasks opened inside one another share one live display: a
stage's bar stays while the judging inside it shows a bar of its own below it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

PLAIN_SHARE = 0.1  # a plain line at every tenth of the work ...
PLAIN_SECONDS = 30.0  # ... or after this long without one, whichever comes first

OnProgress = Callable[[int], None]
"""Called with how many more items are done."""


def bar_columns() -> tuple:
    """What a bar shows: the task, the bar, items done of total, elapsed time and the estimated time left."""
    return (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


class Step:
    """Handed to a long piece of work: call it with how many more items are done, or set done and total at once.
    This one shows nothing (work run without anyone watching)."""

    def __call__(self, advance: int = 1) -> None:
        pass

    def set_total_and_position(self, done: int, total: int) -> None:
        pass


class _BarStep(Step):
    def __init__(self, bar: RichProgress, task: int) -> None:
        self.bar, self.task = bar, task

    def __call__(self, advance: int = 1) -> None:
        self.bar.advance(self.task, advance)  # rich's progress takes its own lock: safe from worker threads

    def set_total_and_position(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total)


def clock(seconds: float) -> str:
    """``H:MM:SS``, as the bar shows time."""
    whole = max(0, round(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class _PlainStep(Step):
    """Writes ``what: done/total (share), elapsed, about ... left`` at the start, at every ``PLAIN_SHARE`` of the
    work or after ``PLAIN_SECONDS`` without a line, and at the end."""

    def __init__(self, console: Console, description: str, total: int | None) -> None:
        self.console, self.description, self.total = console, description, total
        self.done = 0
        self.started = self.last_line = time.monotonic()
        self.shares_shown = 0  # whole PLAIN_SHAREs of the work a line has shown
        self.lock = threading.Lock()
        self.line()

    def __call__(self, advance: int = 1) -> None:
        with self.lock:
            self.done += advance
            self._maybe_line()

    def set_total_and_position(self, done: int, total: int) -> None:
        with self.lock:
            self.done, self.total = done, total
            self._maybe_line()

    def _maybe_line(self) -> None:
        if self.total and self.done >= self.total:
            return  # the line at the end says it
        shares = int(self.done / self.total / PLAIN_SHARE + 1e-9) if self.total else 0
        if shares > self.shares_shown or time.monotonic() - self.last_line >= PLAIN_SECONDS:
            self.shares_shown = max(shares, self.shares_shown)
            self.line()

    def line(self, final: bool = False) -> None:
        now = time.monotonic()
        self.last_line = now
        elapsed = now - self.started
        if self.total:
            text = f"{self.description}: {self.done}/{self.total} ({self.done / self.total:.0%}), {clock(elapsed)}"
            if final:
                text += " in all"
            elif 0 < self.done < self.total:
                text += f" elapsed, about {clock(elapsed / self.done * (self.total - self.done))} left"
        else:
            text = f"{self.description}: {self.done} done, {clock(elapsed)}" + (" in all" if final else " elapsed")
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)


class Progress:
    """Where long work shows its progress: ``with progress.task("judging", total) as step: ... step(n)``.

    A bar on an interactive terminal, plain lines on any other console (``Console(file=..., force_terminal=
    False)``), nothing at all for ``Progress.silent()``."""

    def __init__(self, console: Console | None = None, *, enabled: bool = True) -> None:
        self.console = console or Console()
        self.enabled = enabled
        self._bar: RichProgress | None = None
        self._open = 0
        self._lock = threading.Lock()

    @classmethod
    def silent(cls) -> Progress:
        return cls(Console(quiet=True), enabled=False)

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Step]:
        """A task of ``total`` items (None: unknown), shown while the block runs and removed after it."""
        if not self.enabled:
            yield Step()
        elif not self.console.is_interactive:
            step = _PlainStep(self.console, description, total)
            yield step
            with step.lock:  # not after a failure: the error says what happened
                step.line(final=True)
        else:
            bar = self._enter()
            task = bar.add_task(description, total=total)
            try:
                yield _BarStep(bar, task)
            finally:
                bar.remove_task(task)
                self._leave()

    def _enter(self) -> RichProgress:
        with self._lock:
            if self._bar is None:
                self._bar = RichProgress(*bar_columns(), console=self.console, transient=True)
                self._bar.start()
            self._open += 1
            return self._bar

    def _leave(self) -> None:
        with self._lock:
            self._open -= 1
            if self._open == 0 and self._bar is not None:
                self._bar.stop()
                self._bar = None
