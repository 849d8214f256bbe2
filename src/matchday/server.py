"""The whole server that `matchday serve` runs: the serving API with the dashboard mounted at ``/``.

Put together here, above both, so that `serving/` stays an API that knows nothing of pages: the
dashboard sits on top and reads through the other parts (DESIGN's layering).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from matchday.dashboard import DashboardPages, mount_dashboard
from matchday.serving import create_app, create_app_from_env
from matchday.workspace import Workspace


def create_server(workspace: Workspace | None = None, **options: Any) -> FastAPI:
    """The serving app over ``workspace`` with the dashboard; ``options`` go to `create_app`."""
    app = create_app(workspace, **options)
    ws = app.state.workspace
    mount_dashboard(app, pages_of(ws), lambda: ws.access)
    return app


def create_server_from_env() -> FastAPI:
    """The factory `matchday serve` hands to uvicorn (each worker builds its own)."""
    app = create_app_from_env()
    ws = app.state.workspace
    mount_dashboard(app, pages_of(ws), lambda: ws.access)
    return app


def pages_of(ws: Workspace) -> Callable[[], DashboardPages]:
    """The pages over the workspace's parts, built on the first page asked for: by then the app's
    start-up has opened the database and checked the monitors."""
    built: list[DashboardPages] = []

    def pages() -> DashboardPages:
        if not built:
            built.append(DashboardPages.from_workspace(ws))
        return built[0]

    return pages
