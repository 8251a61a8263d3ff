"""What every command module uses: the console, the API (imported when a command runs) and a number's cell."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from types import ModuleType

console = Console()


def api() -> ModuleType:
    """The API, imported when a command runs: it loads torch and transformers (seconds), which a command that
    can answer at once (a run folder another process holds) should not wait for."""
    from traitloop import api

    return api


def cell(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)
