"""``matchday demo``: the scenario `make demo` runs."""

from __future__ import annotations

from typing import Annotated

import typer

from matchday.cli import render
from matchday.cli.options import FLAG


def demo(
    serve: Annotated[
        bool,
        typer.Option(
            "--serve/--no-serve",
            metavar=FLAG,
            envvar="MATCHDAY_DEMO_SERVE",
            help="end by serving the dashboard until Ctrl-C (--no-serve: exit)",
        ),
    ] = True,
    port: Annotated[int, typer.Option(help="the dashboard's port (a free one if it is taken)")] = 8000,
    headless: Annotated[
        bool,
        typer.Option(
            "--headless",
            metavar=FLAG,
            help="check every step, stop with exit code 1 naming the first that did not happen, "
            "and check the dashboard's pages instead of serving them",
        ),
    ] = False,
) -> None:
    """Run the demo scenario (what `make demo` runs); it ends with the dashboard's address."""
    from matchday.demo import run

    run(render.out(), serve=serve and not headless, port=port, headless=headless)
