"""The ``traitloop`` command line: run | plan | status | eval | export | judge | report | verdict | compare | sweep |
calibrate | trait | pool | models; thin calls into the API. This module holds the app, its groups and the one
place a ``UserError`` is said; the commands live in one module per concern.

May import: config, io, errors, rundir, analysis, sweep, api.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from traitloop.cli._analysis import report, verdict
from traitloop.cli._authoring import pool_import, pool_new, trait_list, trait_new, trait_validate
from traitloop.cli._compare import compare
from traitloop.cli._judge import judge
from traitloop.cli._models import models_list, models_pull
from traitloop.cli._plan import export, plan
from traitloop.cli._run import eval_, run, status
from traitloop.cli._shared import console
from traitloop.cli._sweep import calibrate, sweep_run, sweep_status
from traitloop.errors import UserError

__all__ = ["app", "console"]


class _UserErrorsAsMessages(TyperGroup):
    """The one place a ``UserError`` from any command (or sub-command) becomes its message and exit code 2: a
    mistake the user can fix is said in one line, without a traceback."""

    def invoke(self, ctx):  # noqa: ANN001, ANN201 - click's signature
        try:
            return super().invoke(ctx)
        except UserError as error:
            console.print(f"[red]error:[/] {error}", highlight=False)
            raise typer.Exit(2) from None


class _RunByDefault(TyperGroup):
    """``traitloop sweep SWEEP.yaml`` means ``traitloop sweep run SWEEP.yaml``; ``sweep status`` stays a command."""

    def resolve_command(self, ctx, args):  # noqa: ANN001, ANN201 - click's signature
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=_UserErrorsAsMessages, help="Does self-training amplify a behavioural trait?", no_args_is_help=True
)
app.command("run")(run)
app.command("plan")(plan)
app.command("status")(status)
app.command("eval")(eval_)
app.command("export")(export)
app.command("judge")(judge)
app.command("report")(report)
app.command("verdict")(verdict)
app.command("compare")(compare)
app.command("calibrate")(calibrate)

models_app = typer.Typer(help="Models traitloop can use without a model hub.", no_args_is_help=True)
models_app.command("list")(models_list)
models_app.command("pull")(models_pull)
app.add_typer(models_app, name="models")

trait_app = typer.Typer(help="Write, check and list trait folders.", no_args_is_help=True)
trait_app.command("new")(trait_new)
trait_app.command("validate")(trait_validate)
trait_app.command("list")(trait_list)
app.add_typer(trait_app, name="trait")

pool_app = typer.Typer(help="Prompt pools: written by a generator, or imported from a file.", no_args_is_help=True)
pool_app.command("new")(pool_new)
pool_app.command("import")(pool_import)
app.add_typer(pool_app, name="pool")

sweep_app = typer.Typer(
    cls=_RunByDefault, help="Grids over experiment settings, run locally or on Ray.", no_args_is_help=True
)
sweep_app.command("run")(sweep_run)
sweep_app.command("status")(sweep_status)
app.add_typer(sweep_app, name="sweep")
