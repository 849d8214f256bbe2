"""The demo's last step: a server over everything the demo stored, its dashboard at an address to open,
up until Ctrl-C (or, headless, every page fetched once and its status checked)."""

from __future__ import annotations

import time
from typing import Any

import httpx
from rich.console import Console

from matchday.demo import caller
from matchday.demo.serving import running_server
from matchday.workspace import Workspace

PAGES = (
    "/",
    "/deployments/payments",
    "/deployments/payments/drift/amount",
    "/deployments/fraud/rollout",
    "/deployments/camera",
    "/deployments/tills",
    "/models/demo-fraud",
    "/alerts",
    "/review",
    "/retrain",
    "/edge/devices",
)


def serve(
    console: Console, ws: Workspace, settings: dict[str, Any], credentials: caller.Credentials, port: int = 8000
) -> None:
    """Serve until Ctrl-C, with the demo's monitors (``settings``, its matchday.yaml: each alert shows its monitor).

    Without the checkout's retraining policy: /retrain lists the lockdown's run, but this server's worker does
    not retrain (an alert the lockdown left firing would start a run on an empty window an hour later)."""
    with running_server(ws, port=port, **settings) as url:
        console.print("the pages read the windows the monitoring loop stored; they refresh every 10 s:")
        for page in PAGES:
            console.print(f"  {url}{page}")
        console.print(
            f"[bold]Dashboard: {url}/[/]  log in as [bold]{credentials.user}[/] with the password "
            f"[bold]{credentials.password}[/] (made up for this run)  (Ctrl-C stops the server)"
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            console.print("server stopped")


def check(
    console: Console, ws: Workspace, settings: dict[str, Any], credentials: caller.Credentials
) -> list[tuple[str, int]]:
    """Log in and fetch every page once from a real server over the demo's data: (page, status) each."""
    statuses: list[tuple[str, int]] = []
    with running_server(ws, **settings) as url, httpx.Client(base_url=url, timeout=30) as http:
        statuses.append(("/login", caller.login(http, credentials)))
        console.print(f"  POST /login as {credentials.user} -> {statuses[-1][1]}")
        for page in PAGES:
            status = http.get(page).status_code
            console.print(f"  GET {page} -> {status}")
            statuses.append((page, status))
    return statuses
