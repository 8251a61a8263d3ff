"""Rich progress bars for the long steps of a run (generation, training, evaluation)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class _Step:
    """Handed to a long step: call it with a count to advance, or report ``(done, total)`` directly."""

    def __init__(self, progress: Progress, task: int) -> None:
        self.progress, self.task = progress, task

    def __call__(self, advance: int) -> None:
        self.progress.advance(self.task, advance)

    def set_total_and_position(self, done: int, total: int) -> None:
        self.progress.update(self.task, completed=done, total=total)


class StageProgress:
    def __init__(self, console: Console) -> None:
        self.console = console

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[_Step]:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=True) as progress:
            yield _Step(progress, progress.add_task(description, total=total))


def quiet_libraries() -> None:
    """Our own progress bars replace the libraries' per-call bars, info logs and deprecation notices."""
    import warnings

    import datasets
    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()
