"""The ``matchday`` command: every command group composed into one Typer app, and the entry point that turns
our errors into one red line. The commands are thin (parse, call a part, print with Rich); each group lives
in its own module, and each imports the parts it calls only when it runs."""

from __future__ import annotations

import sys

import typer

from matchday.cli import demo, deployments, drift, monitoring, rollout, serve
from matchday.cli.access import tokens_app, users_app
from matchday.cli.batch import batch_app
from matchday.cli.db import db_app
from matchday.cli.edge import edge_app
from matchday.cli.log import log_app
from matchday.cli.models import models_app
from matchday.cli.render import err
from matchday.cli.retrain import retrain_app
from matchday.cli.review import automation_app, review_app
from matchday.errors import MatchdayError

app = typer.Typer(
    help="matchday: deploy trained models and keep watch over them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("deploy")(deployments.deploy)
app.command("serve")(serve.serve)
app.command("worker")(serve.worker_command)
app.command("events")(rollout.events)
app.command("metrics")(monitoring.metrics)
app.command("monitors")(monitoring.monitors)
app.command("alerts")(monitoring.alerts)
app.command("drift")(drift.drift)
app.command("demo")(demo.demo)
app.add_typer(models_app, name="models")
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(review_app, name="review")
app.add_typer(automation_app, name="automation")
app.add_typer(retrain_app, name="retrain")
app.add_typer(edge_app, name="edge")
app.add_typer(batch_app, name="batch")
app.add_typer(deployments.deployments_app, name="deployments")
app.add_typer(rollout.rollout_app, name="rollout")
app.add_typer(log_app, name="log")


def main(argv: list[str] | None = None) -> None:
    """Entry point: our errors become one red line and exit code 1, never a traceback.

    ``argv`` (default: ``sys.argv[1:]``) lets the tests run a command in-process exactly as the console script does.
    """
    try:
        code = app(args=argv, prog_name="matchday" if argv is not None else None, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except MatchdayError as exc:
        err().print(f"[red]error:[/] {exc}", highlight=False, markup=True)
        sys.exit(1)
    except typer.Abort:
        err().print("aborted")
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # usage errors (a mistyped command, a bad option) come through here
        if _is_click_exception(exc):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        raise


def _is_click_exception(exc: Exception) -> bool:
    """Click's own, or the copy newer Typer versions bundle: both have ``show`` and an ``exit_code``."""
    return any(
        cls.__name__ == "ClickException" and cls.__module__.endswith("click.exceptions") for cls in type(exc).__mro__
    )
