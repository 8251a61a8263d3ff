"""``models list | pull``: the built-in models and the cache."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from traitloop.cli._shared import api, console


def models_list() -> None:
    """Built-in models and whether they are converted in the cache."""
    table = Table()
    for column in ("name", "cached", "source"):
        table.add_column(column)
    for name, cached, description in api().list_models():
        table.add_row(name, "yes" if cached else "no", description)
    console.print(table)


def models_pull(name: Annotated[str, typer.Argument(help="A built-in model name.")]) -> None:
    """Fetch and convert a built-in model into the cache now."""
    path = api().pull_model(name)
    console.print(f"{name}: {path}")
