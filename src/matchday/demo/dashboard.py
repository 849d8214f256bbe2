"""The demo's last step: a server over everything the demo stored, its dashboard at an address to open,
up until Ctrl-C."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console

from matchday.config import MonitoringSettings
from matchday.demo.monitoring import WINDOW, demo_monitors
from matchday.demo.serving import running_server
from matchday.workspace import Workspace

PAGES = (
    "/",
    "/deployments/payments",
    "/deployments/payments/drift/amount",
    "/deployments/fraud/rollout",
    "/models/demo-fraud",
    "/alerts",
    "/review",
    "/retrain",
)


def serve(console: Console, ws: Workspace, port: int = 8000) -> None:
    """Serve until Ctrl-C, with the payments monitors the alerts came from (so each alert shows its monitor).

    Without the checkout's retraining policy: /retrain lists step 10's run, but this server's worker does
    not retrain (an alert the lockdown left firing would start a run on an empty window an hour later)."""
    settings: dict[str, Any] = {"monitors": demo_monitors(), "monitoring": MonitoringSettings(count_window=WINDOW)}
    with running_server(ws, port=port, **settings) as url:
        console.print("the pages read the windows the monitoring loop stored; they refresh every 10 s:")
        for page in PAGES:
            console.print(f"  {url}{page}")
        console.print(f"[bold]Dashboard: {url}/[/]  (Ctrl-C stops the server)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            console.print("server stopped")
