"""The registry after the demo: every model with its aliases, and the fraud model's versions, their lineage
and alias history, drawn as `matchday models list` and `matchday models show demo-fraud` draw them."""

from __future__ import annotations

from rich.console import Console

from matchday.cli import render
from matchday.workspace import Workspace


def show(console: Console, ws: Workspace) -> None:
    registry = ws.registry
    console.print("$ matchday models list")
    console.print(render.models_table(registry.list_models()))
    console.print("$ matchday models show demo-fraud")
    console.print(
        render.model_versions("demo-fraud", registry.list_versions("demo-fraud"), registry.alias_history("demo-fraud"))
    )
