"""``matchday users`` and ``matchday tokens``: who may do what. They work on the store directly, as the
machine's own administrator (whoever can run them can read the database anyway)."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from matchday.cli.context import default_workspace, local_actor
from matchday.cli.options import FLAG
from matchday.cli.render import Col, FittingTable, err, out
from matchday.errors import MatchdayError

users_app = typer.Typer(help="Dashboard users: add, list, change a password, remove.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens for machines: create, list, revoke.", no_args_is_help=True)


RoleOption = Annotated[
    list[str], typer.Option("--role", help="viewer, predictor, reviewer, operator or admin (repeat for several)")
]


def _password(stdin: bool, name: str) -> str:
    """Asked twice on a terminal, or the first line of standard input for scripts."""
    if stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if not sys.stdin.isatty():
        raise MatchdayError("no terminal to ask the password on: pass it on standard input with --password-stdin")
    first = getpass.getpass(f"password for {name}: ")
    if first != getpass.getpass("again: "):
        raise MatchdayError("the two passwords differ; nothing changed")
    return first


@users_app.command("add")
def users_add(
    name: str,
    role: RoleOption,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", metavar=FLAG, help="read the password from stdin")
    ] = False,
) -> None:
    """Add a user who logs in to the dashboard (the password is asked, never given on the command line)."""
    password = _password(password_stdin, name)
    user = default_workspace().access.add_user(name, password, role, local_actor())
    out().print(f"user [bold]{user.name}[/] added with role(s) {', '.join(user.roles)}")


@users_app.command("list")
def users_list() -> None:
    """Every user and their roles."""
    table = FittingTable(Col("user", key=True), Col("roles", wrap=True), Col("created (UTC)", fold=1), "by")
    for u in default_workspace().access.list_users():
        table.add_row(u.name, ", ".join(u.roles), f"{u.created_at:%Y-%m-%d %H:%M}", u.created_by)
    out().print(table)


@users_app.command("passwd")
def users_passwd(
    name: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", metavar=FLAG, help="read the password from stdin")
    ] = False,
) -> None:
    """Set a user's password (their sessions end: they log in again)."""
    default_workspace().access.set_password(name, _password(password_stdin, name), local_actor())
    out().print(f"password of [bold]{name}[/] changed; their sessions ended")


@users_app.command("remove")
def users_remove(name: str) -> None:
    """Remove a user (logged out everywhere at once)."""
    default_workspace().access.remove_user(name, local_actor())
    out().print(f"user [bold]{name}[/] removed")


@tokens_app.command("create")
def tokens_create(
    role: RoleOption,
    name: Annotated[str, typer.Option("--name", help="what the token is for (shown in lists and the audit trail)")],
    deployment: Annotated[
        list[str] | None, typer.Option("--deployment", help="limit a predictor to these deployments (repeat)")
    ] = None,
    expires: Annotated[str, typer.Option(help="12h, 90d, 2w, or never")] = "90d",
) -> None:
    """Create a token; it is printed once, here (only a salted hash of it is kept)."""
    token, record = default_workspace().access.create_token(
        role, name=name, created_by=local_actor(), deployments=deployment, expires=expires
    )
    expiry = f"expires {record.expires_at:%Y-%m-%d %H:%M} UTC" if record.expires_at else "never expires"
    scope = f" for {', '.join(record.deployments)}" if record.deployments else ""
    err().print(
        f"token {record.key} ({record.name}): role(s) {', '.join(record.roles)}{scope}, {expiry}. "
        "Shown once: store it now."
    )
    print(token)  # alone on standard output, for `TOKEN=$(matchday tokens create ...)`


@tokens_app.command("list")
def tokens_list() -> None:
    """Every token (revoked and expired ones too), without its secret."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    table = FittingTable(
        Col("key", key=True),
        Col("name", wrap=True),
        Col("roles", wrap=True),
        Col("deployments", wrap=True),
        "state",
        Col("expires (UTC)", fold=2),
        Col("last used (UTC)", fold=3),
        Col("by", fold=1),
    )
    for t in default_workspace().access.list_tokens():
        state = (
            "revoked" if t.revoked_at else "expired" if t.expires_at is not None and t.expires_at <= now else "active"
        )
        table.add_row(
            t.key,
            t.name,
            ", ".join(t.roles),
            ", ".join(t.deployments) if t.deployments else "all",
            state,
            f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "never",
            f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "-",
            t.created_by,
        )
    out().print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    key: Annotated[str, typer.Argument(help="the token's key (tokens list) or the token itself")],
) -> None:
    """Revoke a token: refused at once here, and by every server within half a second."""
    record = default_workspace().access.revoke_token(key, local_actor())
    out().print(f"token {record.key} ({record.name}) revoked")
