"""Throughput of one server as concurrency grows, with micro-batching and without.

Run: .venv/bin/python benchmarks/serving.py [--requests 600]

Starts `matchday serve` in its own process on 127.0.0.1 with two deployments of one model, one
with micro-batching (max batch 64) and one without (max batch 1), and sends one-row requests
from 1, 8 and 32 client threads. The model is the demo's fraud pipeline (one-hot + gradient
boosting); the client runs in this process, so both share the machine's two cores.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from matchday.config import Settings
from matchday.demo import transactions
from matchday.demo.scenario import train_fraud_model
from matchday.workspace import Workspace


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MATCHDAY_HOME": str(home)}
    env.pop("MATCHDAY_DATABASE_URL", None)
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "matchday"), "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=home,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def load(url: str, deployment: str, rows: list[dict[str, object]], threads: int) -> tuple[float, float, float]:
    latencies: list[float] = []

    def worker(chunk: list[dict[str, object]]) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            for row in chunk:
                start = time.perf_counter()
                r = client.post(f"/v1/deployments/{deployment}/predict", json={"instances": [row]})
                r.raise_for_status()
                latencies.append(time.perf_counter() - start)

    chunks = [rows[i::threads] for i in range(threads)]
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, chunks))
    elapsed = time.perf_counter() - started
    return len(rows) / elapsed, float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ws = Workspace(Settings(home=home))
        model, train, _ = train_fraud_model()
        ws.registry.register("fraud", model, reference=train, target="is_fraud")
        deployments = ws.deployments
        deployments.deploy("batched", "fraud:1", {"max_batch_size": 64})
        deployments.deploy("unbatched", "fraud:1", {"max_batch_size": 1})
        ws.close()
        proc, url = start_server(home)
        try:
            rows = transactions(args.requests, seed=5).drop_columns(["is_fraud"]).to_pylist()
            load(url, "batched", rows[:50], 4)  # warm both deployments
            load(url, "unbatched", rows[:50], 4)
            print(
                f"{'threads':>8} | {'batched rows/s':>15} | {'p50 ms':>7} | {'p99 ms':>7} | {'unbatched rows/s':>17} | "
                f"{'p50 ms':>7} | {'p99 ms':>7} | batched/unbatched"
            )
            print("-" * 104)
            for threads in (1, 8, 32):
                b = load(url, "batched", rows, threads)
                u = load(url, "unbatched", rows, threads)
                print(
                    f"{threads:>8} | {b[0]:>15.0f} | {b[1] * 1000:>7.1f} | {b[2] * 1000:>7.1f} | {u[0]:>17.0f} | "
                    f"{u[1] * 1000:>7.1f} | {u[2] * 1000:>7.1f} | {b[0] / u[0]:>6.2f}x"
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


if __name__ == "__main__":
    main()
