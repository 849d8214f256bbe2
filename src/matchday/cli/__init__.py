"""The ``matchday`` command line: one module per command group, composed in `matchday.cli.app`.

Importing this package imports no command: `matchday.cli.render` (what the demo shares) stays cheap, and
`main` loads the app on its first call.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """The console script: every command, run through `matchday.cli.app.main` (see there)."""
    from matchday.cli.app import main as run

    run(argv)
