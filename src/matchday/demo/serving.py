"""The serving part of the demo: deploy, start a real server, send traffic and feedback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from rich.console import Console

from matchday.client import Client, ServerError
from matchday.demo import caller
from matchday.demo.fraud import transactions
from matchday.workspace import Workspace


@contextmanager
def running_server(
    ws: Workspace,
    host: str = "127.0.0.1",
    controller_interval: float | None = None,
    port: int | None = None,
    **settings: Any,
) -> Iterator[str]:
    """A real uvicorn server on a free local port (``port`` if it is free), in a thread, with the worker
    in another; both stopped (and the log flushed) on exit.

    ``settings`` override the workspace's (e.g. ``monitor_interval``, ``monitors``) for this server only.
    """
    import uvicorn

    from matchday.server import create_server
    from matchday.worker import WorkerThread

    port = _free_port(host, port)
    if controller_interval is not None:
        settings["controller_interval"] = controller_interval
    served = Workspace(ws.settings.model_copy(update=settings))
    server = uvicorn.Server(uvicorn.Config(create_server(served), host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    worker = WorkerThread(
        Workspace(served.settings)
    ).start()  # monitoring, rollouts, webhooks: as `matchday serve` does
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).json().get("ready"):
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield url
    finally:
        worker.stop()
        worker.ws.close()
        server.should_exit = True
        thread.join(30)


def _free_port(host: str, wanted: int | None) -> int:
    """``wanted`` if nothing listens there, else any free port."""
    for candidate in ([wanted] if wanted else []) + [0]:
        with socket.socket() as s:
            try:
                s.bind((host, candidate))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError(f"no free port on {host}")


@dataclass(frozen=True)
class Outcome:
    """What the step saw: rows sent, labels joined, rows the log holds, and the bad requests refused."""

    sent: int
    labels_joined: int
    logged: int
    refused: int


def run(console: Console, ws: Workspace) -> Outcome:
    deployments = ws.deployments
    record, _ = deployments.deploy("fraud", "demo-fraud@champion")
    console.print(f"$ matchday deploy fraud demo-fraud@champion   → serves {deployments.route('fraud').primary.ref}")
    traffic = transactions(2_000, seed=2024)
    rows = traffic.drop_columns(["is_fraud"]).to_pylist()
    truth = traffic["is_fraud"].to_pylist()
    with running_server(ws) as url, Client(url) as client:
        console.print(
            f"server up at {url} (own JSON at /v1, Open Inference Protocol at /v2, Prometheus at /metrics); "
            "its worker (monitoring, rollout controller, webhooks) runs beside it, as `matchday serve` starts one, "
            "and the prediction log is written by a process of its own"
        )
        one = client.predict("fraud", rows[:1], ids=["tx-0"])
        console.print(f"POST /v1/deployments/fraud/predict → {one['predictions'][0]}")

        chunks = [(i, rows[i : i + 10]) for i in range(0, len(rows), 10)]
        latencies: list[float] = []

        def send(chunk: tuple[int, list[dict[str, object]]]) -> None:
            start = time.perf_counter()
            client_ = Client(url)
            client_.predict("fraud", chunk[1], ids=[f"tx-{chunk[0] + j}" for j in range(len(chunk[1]))])
            client_.close()
            latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, chunks))
        elapsed = time.perf_counter() - started
        console.print(
            f"sent {len(rows):,} transactions in {len(chunks)} requests from 8 threads: "
            f"{len(rows) / elapsed:,.0f} rows/s, request latency p50 {np.percentile(latencies, 50) * 1000:.0f} ms, "
            f"p99 {np.percentile(latencies, 99) * 1000:.0f} ms"
        )
        metrics = httpx.get(f"{url}/metrics", headers=caller.headers()).text
        calls = _sample(metrics, "matchday_batch_size_rows_count")
        scored = _sample(metrics, "matchday_batch_size_rows_sum")
        console.print(
            f"micro-batching: {scored:.0f} rows in {calls:.0f} model calls ({scored / max(calls, 1):.1f} rows per call)"
        )

        labels = [{"id": f"tx-{i}", "label": truth[i]} for i in range(0, len(rows), 4)]
        answer = client.feedback("fraud", labels + [{"id": "tx-unknown", "label": 0}])
        console.print(
            f"POST /v1/deployments/fraud/feedback: {answer['joined']} labels joined, unknown: {answer['unknown']}"
        )
        metrics = httpx.get(f"{url}/metrics", headers=caller.headers()).text
        console.print(
            f"prediction log: {_sample(metrics, 'matchday_prediction_log_written_rows'):,.0f} rows shipped to the "
            f"database by the log process, {_sample(metrics, 'matchday_prediction_log_queue_rows'):,.0f} waiting "
            "(feedback waits for the rows it labels)"
        )
        refused = httpx.post(
            f"{url}/v1/deployments/fraud/feedback",
            json={"labels": [{"id": "tx-1", "label": "yes"}]},
            headers=caller.headers(),
        )
        problem = refused.json()["details"][0]
        console.print(
            f'a label "yes" for a classifier of [0, 1] is refused with {refused.status_code}: '
            f"{problem['field']}: {problem['problem']}"
        )
        refused_count = int(refused.status_code == 422)
        try:
            client.predict("fraud", [{"amount": "lots", "hour": 25.5, "merchant": "grocery", "country": "home"}])
        except ServerError as exc:
            refused_count += int(exc.status == 422)
            console.print(f"a bad request is refused with {exc.status}: {exc.message.split(': ', 1)[1]}")
            for problem in exc.problems:
                console.print(f"    {problem['field']}: {problem['problem']}")
        _hostile(console, ws, client, url, rows[0])
    logged = ws.prediction_log.count("fraud")
    console.print(f"server stopped gracefully; the prediction log holds {logged:,} rows for deployment fraud")
    _export(console, ws)
    return Outcome(len(rows) + 1, int(answer["joined"]), logged, refused_count)


def _export(console: Console, ws: Workspace) -> None:
    """`matchday log export`: the log as a data scientist takes it into a notebook."""
    import pyarrow.parquet as pq

    from matchday.monitoring import export_log
    from matchday.registry import ModelRef

    out = ws.settings.home / "fraud-log.parquet"
    summary = export_log(
        ws.prediction_log,
        "fraud",
        out,
        lambda model, version: ws.registry.get_signature(ModelRef(model, version=version)).output.classes,
    )
    console.print(f"$ matchday log export fraud {out}   → {summary.rows:,} rows x {len(summary.columns)} columns")
    table = pq.read_table(out).filter(pq.read_table(out, columns=["label"]).column("label").is_valid())
    first = table.slice(0, 1).to_pylist()[0]
    shown = {
        k: (round(v, 3) if isinstance(v, float) else v)
        for k, v in first.items()
        if k
        in (
            "entity_id",
            "version",
            "source",
            "amount",
            "merchant",
            "prediction",
            "probability_1",
            "label",
            "label_source",
        )
    }
    console.print(f"    columns: {', '.join(summary.columns)}\n    a labelled row: {shown}")


def _hostile(console: Console, ws: Workspace, client: Client, url: str, row: dict[str, Any]) -> None:
    """Input a hostile caller sends: far out of range (scored if the model copes, else the caller's 422),
    and a V2 field of the wrong type."""
    coped = client.predict("fraud", [{**row, "amount": 1e308}])
    console.print(
        f"amount 1e308, far outside the reference range: gradient boosting copes, so it is scored and "
        f"flagged (input_quality {coped['input_quality']['by_feature']})"
    )
    ws.deployments.deploy("digits", "demo-digits@champion")
    try:
        client.predict("digits", [{f"pixel_{r}_{c}": 1e308 for r in range(8) for c in range(8)}])
    except ServerError as exc:
        first = exc.problems[0]
        console.print(
            f"an image of 1e308 pixels: the logistic regression answers NaN, so it is refused with "
            f"{exc.status}, the caller's input and not the version's failure (never counted against a "
            f"canary):\n    {first['field']}: {first['problem']} (and {len(exc.problems) - 1} more)"
        )
    bad = httpx.post(
        f"{url}/v2/models/fraud/infer",
        json={"inputs": [{"name": "amount", "shape": [1], "datatype": {}, "data": [1.0]}]},
        headers=caller.headers(),
    )
    console.print(f'a V2 request with "datatype": {{}} is refused with {bad.status_code}: {bad.json()["error"]}')


def _sample(metrics: str, name: str) -> float:
    """The sum of a metric's samples (every label set, or the one unlabelled sample)."""
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith((name + "{", name + " "))
    )
