"""The monitoring part of the demo: a stream with a data-drift point and a concept-drift point goes
through a real server, its labels arrive a window late, and the alerts fire, reach a webhook
receiver on this machine, and resolve."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from matchday.cli import render
from matchday.demo import caller
from matchday.demo.fraud import transactions
from matchday.demo.serving import running_server
from matchday.workspace import Workspace

WINDOW = 500  # rows per window by count
PHASES: tuple[tuple[str, int, dict[str, float]], ...] = (  # story, rows, the shift transactions() draws them with
    ("stationary", 2_500, {}),
    ("holidays: more spent, more abroad (data drift)", 2_000, {"amount_scale": 2.0, "abroad": 0.3}),
    ("back to normal", 1_500, {}),
    ("fraudsters change tactics (concept drift)", 2_500, {"concept_shift": 1.0}),
)


class Pager:
    """A webhook receiver on 127.0.0.1: what a team's chat or pager would get."""

    def __init__(self, console: Console) -> None:
        pager = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                alert = body["alert"]
                colour = "red" if body["event"] == "alert.opened" else "green"
                console.print(
                    f"  [{colour}]webhook {body['event']}[/]: {alert['monitor']} on {alert['deployment']}: "
                    f"{alert['metric']} = {alert['value']:.3g}"
                )
                pager.received.append(body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received: list[dict[str, Any]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def demo_monitors(webhook: str | None = None) -> list[dict[str, Any]]:
    """The payments stream's monitors; each alert also goes to ``webhook`` when one is given."""
    actions: list[Any] = ["alert", {"webhook": webhook}] if webhook else ["alert"]
    return [
        {
            "name": "data-drift",
            "metric": "drift_share",
            "window": f"{WINDOW}rows",
            "when": ">= 0.3",
            "breaches": 2,
            "min_rows": 300,
            "deployment": "payments",
            "actions": actions,
        },
        {
            "name": "accuracy-drop",
            "metric": "accuracy",
            "window": f"{WINDOW}rows",
            "relative_to": "reference",
            "when": "< -0.05",
            "breaches": 2,
            "min_rows": 300,
            "severity": "critical",
            "deployment": "payments",
            "actions": actions,
        },
    ]


@dataclass(frozen=True)
class Outcome:
    """What the step saw: the monitors whose alerts opened, and what the webhook receiver got."""

    opened: list[str]
    deliveries: int
    resolutions: int


def run(console: Console, ws: Workspace, config: Path, server_settings: Callable[[str], dict[str, Any]]) -> Outcome:
    """``config``: the matchday.yaml the demo wrote; ``server_settings(webhook)``: its settings with a webhook."""
    ws.deployments.deploy("payments", "demo-fraud@champion")
    pager = Pager(console)
    console.print(f"wrote {config} (`MATCHDAY_CONFIG={config} matchday serve` watches as this demo does):")
    console.print(config.read_text().rstrip(), highlight=False, markup=False)
    console.print(f"(this step's server also sends each payments alert to a webhook receiver at {pager.url})")
    settings: dict[str, Any] = {"monitor_interval": 0.5, **server_settings(pager.url)}
    with running_server(ws, **settings) as url, caller.http(url) as http:
        sent = 0
        pending: list[tuple[str, int]] = []
        for seed, (story, n, shift) in enumerate(PHASES):
            console.print(f"[bold]{story}[/]: {n:,} transactions")
            traffic = transactions(n, seed=500 + seed, **shift)
            rows = traffic.drop_columns(["is_fraud"]).to_pylist()
            truth = traffic["is_fraud"].to_pylist()
            for start in range(0, n, WINDOW):
                for i in range(start, min(start + WINDOW, n), 100):
                    answer = http.post(
                        "/v1/deployments/payments/predict",
                        json={
                            "instances": rows[i : i + 100],
                            "ids": [f"pay-{sent + k}" for k in range(i, min(i + 100, n))],
                        },
                    )
                    pending += [(p["request_id"], truth[i + k]) for k, p in enumerate(answer.json()["predictions"])]
                if len(pending) > WINDOW:  # the labels of the window before arrive now: late, as in real life
                    done, pending = pending[:-WINDOW], pending[-WINDOW:]
                    http.post(
                        "/v1/deployments/payments/feedback",
                        json={"labels": [{"request_id": r, "label": y} for r, y in done]},
                    )
                _caught_up(http, sent + min(start + WINDOW, n))
            sent += n
        if pending:
            http.post(
                "/v1/deployments/payments/feedback",
                json={"labels": [{"request_id": r, "label": y} for r, y in pending]},
            )
        time.sleep(2.0)  # the last labels judged, the last webhooks sent

    console.print(f"$ matchday metrics payments --window {WINDOW}rows")
    windows = ws.windows.series("payments", f"{WINDOW}rows")[-20:]
    shown = ["rows", "drift.amount", "drift_share", "accuracy", "estimated_accuracy", "concept_drift"]
    console.print(
        render.windows_table(f"payments, {WINDOW}rows windows", windows, shown, ws.monitoring.diagnosis, seconds=True)
    )
    console.print("$ matchday alerts payments")
    console.print(render.alerts_table(ws.alerts.list("payments", limit=10)))
    resolutions = sum(1 for b in pager.received if b["event"] == "alert.resolved")
    console.print(f"the webhook receiver got {len(pager.received)} deliveries ({resolutions} of them resolutions)")
    opened = sorted({a.monitor for a in ws.alerts.list("payments")})
    return Outcome(opened, len(pager.received), resolutions)


def _caught_up(http: httpx.Client, rows: int, timeout: float = 30.0) -> None:
    """Wait until the monitoring loop has summarised ``rows`` rows (so each window is judged as it fills)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        windows = http.get("/v1/deployments/payments/metrics", params={"window": f"{WINDOW}rows", "limit": 1000})
        if sum(w["rows"] for w in windows.json()["windows"]) >= rows:
            return
        time.sleep(0.2)
