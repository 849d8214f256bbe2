"""The rollout part of the demo: a canary of a broken release rolls back by itself, and a canary
of a good one is promoted by itself, while traffic and ground truth keep flowing."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from matchday.cli import render
from matchday.demo import caller
from matchday.demo.fraud import transactions
from matchday.demo.serving import running_server
from matchday.workspace import Workspace

PLAN = {"steps": "20,50,100", "interval": "2s", "min_requests": 60}


@dataclass(frozen=True)
class Outcome:
    """How each rollout ended: (candidate, state, reason), the broken release first."""

    ended: list[tuple[str, str, str | None]]


def run(console: Console, ws: Workspace) -> Outcome:
    registry = ws.registry
    champion = registry.resolve("demo-fraud@champion").version
    signature = registry.get_signature(f"demo-fraud:{champion}")
    broken = registry.register(
        "demo-fraud",
        "matchday.demo.broken:flag_everything",
        signature=signature,
        proba="matchday.demo.broken:flag_everything_proba",
        description="a release with a unit bug: flags every transaction",
    )
    good = 2 if champion == 1 else 1
    traffic = transactions(20_000, seed=7)
    rows = traffic.drop_columns(["is_fraud"]).to_pylist()
    truth = traffic["is_fraud"].to_pylist()
    ended: list[tuple[str, str, str | None]] = []
    with running_server(ws, controller_interval=0.25) as url:
        for candidate, story in ((broken.ref, "a broken release"), (f"demo-fraud:{good}", "the good challenger")):
            console.print(
                f"$ matchday rollout start fraud {candidate} --steps {PLAN['steps']} "
                f"--interval {PLAN['interval']} --min-requests {PLAN['min_requests']}   ({story})"
            )
            ws.rollouts.start("fraud", candidate, dict(PLAN), actor="demo")
            _stream_until_done(console, ws, url, rows, truth)
            record = ws.rollouts.current("fraud")
            ended.append((candidate, record.state, record.reason))
            _show(console, ws)
    return Outcome(ended)


def _stream_until_done(
    console: Console, ws: Workspace, url: str, rows: list[dict[str, Any]], truth: list[int], timeout: float = 90.0
) -> None:
    """Four clients send transactions (and their labels) until the controller has decided."""
    stop = threading.Event()
    sent = [0]

    def client(worker: int) -> None:
        i = worker * 10
        with caller.http(url) as http:
            while not stop.is_set():
                start = i % (len(rows) - 10)
                answer = http.post(
                    "/v1/deployments/fraud/predict",
                    json={"instances": rows[start : start + 10], "ids": [f"card-{start + k}" for k in range(10)]},
                ).json()
                labels = [
                    {"request_id": p["request_id"], "label": truth[start + k]}
                    for k, p in enumerate(answer["predictions"])
                ]
                http.post("/v1/deployments/fraud/feedback", json={"labels": labels})
                sent[0] += 10
                i += 40

    threads = [threading.Thread(target=client, args=(w,), daemon=True) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    last = None
    try:
        while time.monotonic() < deadline:
            record = ws.rollouts.current("fraud")
            now = (record.state, record.step, record.weight)
            if now != last:
                console.print(
                    f"  {sent[0]:>6,} rows sent: {record.state}, candidate share {record.weight:g}%"
                    + (f" ({record.reason})" if record.reason and not record.active else "")
                )
                last = now
            if not record.active:
                return
            time.sleep(0.25)
        console.print(f"  [yellow]no decision within {timeout:.0f}s[/]")
    finally:
        stop.set()
        for t in threads:
            t.join(10)


def _show(console: Console, ws: Workspace) -> None:
    console.print("$ matchday rollout status fraud")
    console.print(render.rollout_status(ws.rollouts.status("fraud", events=5)))
    console.print(f"@champion now points to demo-fraud:{ws.registry.resolve('demo-fraud@champion').version}")
