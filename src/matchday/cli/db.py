"""``matchday db``: the metadata database's migrations."""

from __future__ import annotations

import typer

from matchday.cli.context import default_workspace
from matchday.cli.render import out

db_app = typer.Typer(help="The metadata database.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (also done automatically on start)."""
    ws = default_workspace()
    ws.database.upgrade()
    from matchday.store import head_revision, redact

    out().print(
        f"database {redact(ws.database.url)} is at revision [bold]{ws.database.current_revision()}[/] (head {head_revision()})"
    )


@db_app.command("current")
def db_current() -> None:
    """Print the database's migration revision."""
    ws = default_workspace()
    out().print(ws.database.current_revision() or "(empty)")
