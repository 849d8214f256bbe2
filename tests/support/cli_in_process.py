"""`matchday ARGS` run in this process through `matchday.cli.main` (what the console script calls),
inside Typer's `CliRunner` isolation: the same exit code, stdout and stderr as a new process, without
its ~1-2 s start-up."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence

from typer.testing import CliRunner

from matchday.cli import main

RUNNER = CliRunner()


def run_in_process(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    after: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the command; ``after`` undoes what a process exit would (e.g. forget the default workspace).
    The runner echoes a prompt's answer (``input``) to stdout, unlike a real process. The commands build
    their Rich consoles as they run, so each sees this call's COLUMNS and streams."""
    excepthook, code = sys.excepthook, 0
    with RUNNER.isolation(input=input, env=dict(env) if env is not None else None) as (stdout, stderr, _):
        try:
            main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.excepthook = excepthook  # typer installs its own on every call
            if after is not None:
                after()
        return subprocess.CompletedProcess(
            ["matchday", *argv], code, stdout.getvalue().decode(), stderr.getvalue().decode()
        )
