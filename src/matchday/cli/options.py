"""Options several command groups share, and how a flag shows in help."""

from __future__ import annotations

from typing import Annotated

import typer

FLAG = ""  # a flag's metavar: it takes no value (Typer would show `<bool>` after it)

JsonFlag = Annotated[bool, typer.Option("--json", metavar=FLAG, help="print JSON instead of tables")]
