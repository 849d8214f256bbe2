"""What every command group shares: the workspace, opened at the command boundary, and the name the audit
trail gives whoever runs a command on this machine."""

from __future__ import annotations

import getpass
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matchday.workspace import Workspace


def default_workspace() -> Workspace:
    """The environment's workspace, imported at the command boundary: `matchday --help` and commands
    that need no part do not pay for importing them (NumPy, pyarrow, SQLAlchemy: a second and more)."""
    from matchday.workspace import default_workspace as environment_workspace

    return environment_workspace()


def local_actor() -> str:
    """The audit trail's name for a command run on this machine: ``cli:<os user>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"cli:{user}"
