"""The primary's latency with a 10x slower shadow mirroring all its traffic, against no shadow.

Run: .venv/bin/python benchmarks/shadow.py [--requests 600] [--rounds 3] [--clients 8 | --rate 40]

Acceptance target: the primary's p99 with a shadow 10x slower than it stays within 10% of its p99
with no shadow, measured side by side in one run.

One workspace in a temp dir (SQLite unless --database-url) and one `matchday serve` in its own
process. The primary is the demo's fraud pipeline (one-hot + gradient boosting). Two shadows,
each measured to be ~10x slower per call than the primary (one row, `predict` and
`predict_proba` as the server calls them):

- wait: a callable that sleeps 10x the primary's per-call time (a model that waits on a remote
  feature store); it uses no CPU and releases the GIL;
- cpu: a random forest whose number of trees is calibrated to ~10x the primary's per-call time;
  it burns CPU (and holds the GIL for much of it) in the server's shadow process.

Each configuration (no shadow, wait shadow at 100% mirror, cpu shadow at 100% mirror, and no
shadow again: an A/A row that shows how much p99 moves by chance) is measured for --requests
one-row requests from --clients concurrent closed-loop clients, in --rounds rounds whose order
rotates. With --rate R the load is open-loop instead: one-row requests arrive at R per second
(Poisson) and latency counts from each one's arrival, so the server can be measured below
saturation (a closed loop with no think time keeps a one-process server busy at any client
count). A shadow is started with ``rollouts.start(..., {"strategy": "shadow"})`` and
ended with ``rollouts.rollback``; after each change the benchmark waits 2 s (the server rereads
plans every second) and warms up before measuring. The clients run in this process, so they share
the machine's cores with the server.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa

from matchday.config import Settings
from matchday.demo import transactions
from matchday.demo.scenario import train_fraud_model
from matchday.registry import Predictor
from matchday.registry.flavors import pack_model
from matchday.workspace import Workspace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # shadow_models, when this file is run from elsewhere or imported
import shadow_models  # noqa: E402  (after the path it is found on)

FEATURES = ["amount", "hour", "merchant", "country", "card_present"]
TARGET = 1.10  # the shadowed p99 may be at most 10% above the unshadowed one


# -- models -------------------------------------------------------------------------------------
def per_call(predictor: Predictor, table: pa.Table, rows: int = 1, calls: int = 60) -> float:
    """Median seconds of one model call as the server makes it: predict, then predict_proba if any."""

    def call(i: int) -> None:
        part = table.slice((i * rows) % (table.num_rows - rows), rows)
        predictor.predict(part)
        if predictor.has_proba:
            predictor.predict_proba(part)

    for i in range(5):
        call(i)
    times = []
    for i in range(calls):
        started = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def heavy_forest(train: Any, signature: Any, table: pa.Table, target: float, max_trees: int) -> tuple[Any, int]:
    """A random forest pipeline with as many trees as make one call take ~``target`` seconds."""
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["merchant", "country"]), remainder="passthrough"
        ),
        RandomForestClassifier(n_estimators=max_trees, max_depth=10, n_jobs=2, random_state=0),
    ).fit(train[FEATURES], train["is_fraud"])
    forest = model[-1]
    forest.n_jobs = None  # served one tree after another, like a model trained elsewhere would be
    trees = list(forest.estimators_)

    def timed(k: int) -> float:
        forest.estimators_, forest.n_estimators = trees[:k], k
        predictor = pack_model(model).predictor
        predictor.signature = signature
        return per_call(predictor, table, calls=15)

    low, high = max(2, max_trees // 20), max_trees
    t_low, t_high = timed(low), timed(high)
    k = low + (target - t_low) * (high - low) / max(t_high - t_low, 1e-9)  # per call ~ a + b * trees
    k = int(min(max(k, 1), max_trees))
    for _ in range(4):  # corrections from a measurement at k, until within 5%
        t_k = timed(k)
        if abs(t_k / target - 1) < 0.05:
            break
        k = int(min(max(round(k * target / t_k), 1), max_trees))
    forest.estimators_, forest.n_estimators = trees[:k], k
    return model, k


# -- the server and the load ----------------------------------------------------------------------
def start_server(home: Path, database_url: str | None, wait_ms: float) -> tuple[subprocess.Popen[bytes], str, Path]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "MATCHDAY_HOME": str(home),
        shadow_models.WAIT_MS: f"{wait_ms:.3f}",
        "PYTHONPATH": os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p),
    }
    env.pop("MATCHDAY_DATABASE_URL", None)
    if database_url:
        env["MATCHDAY_DATABASE_URL"] = database_url
    log = home / "server.log"
    with open(log, "ab") as out:  # the server keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "matchday"), "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            cwd=home,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).json().get("ready"):
                return proc, url, log
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not start:\n{log.read_text()[-3000:]}")


def load(url: str, deployment: str, rows: list[dict[str, Any]], clients: int) -> tuple[list[float], float]:
    """Closed loop: each client sends its share of one-row requests one after another."""
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(chunk: list[dict[str, Any]]) -> None:
        mine = []
        with httpx.Client(base_url=url, timeout=60) as client:
            for row in chunk:
                started = time.perf_counter()
                r = client.post(f"/v1/deployments/{deployment}/predict", json={"instances": [row]})
                r.raise_for_status()
                mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, [rows[i::clients] for i in range(clients)]))
    return latencies, time.perf_counter() - started


def load_open(
    url: str, deployment: str, rows: list[dict[str, Any]], rate: float, seed: int, senders: int = 32
) -> tuple[list[float], float]:
    """Open loop: requests arrive at ``rate`` per second (Poisson), whether or not earlier ones are answered.

    Latency counts from each request's scheduled arrival, so a request that had to wait for a free
    sender (the server fell behind) is charged the wait too.
    """
    clients = [httpx.Client(base_url=url, timeout=60) for _ in range(senders)]  # made before the clock starts
    for client in clients:  # and connected
        client.get("/v2/health/live").raise_for_status()
    latencies: list[float] = []
    lock = threading.Lock()
    order = iter(range(len(rows)))
    schedule = time.perf_counter() + 0.05 + np.cumsum(np.random.default_rng(seed).exponential(1 / rate, len(rows)))

    def sender(client: httpx.Client) -> None:
        while True:
            with lock:
                i = next(order, None)
            if i is None:
                return
            time.sleep(max(0.0, schedule[i] - time.perf_counter()))
            r = client.post(f"/v1/deployments/{deployment}/predict", json={"instances": [rows[i]]})
            r.raise_for_status()
            done = time.perf_counter() - schedule[i]
            with lock:
                latencies.append(done)

    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(senders) as pool:
            for future in [pool.submit(sender, client) for client in clients]:
                future.result()
    finally:
        for client in clients:
            client.close()
    return latencies, time.perf_counter() - started


def metrics(url: str, model: str) -> dict[str, dict[str, float]]:
    """Counters by version: shadow rows scored, dropped (per deployment), batch rows and calls."""
    out: dict[str, dict[str, float]] = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("#") or "{" not in line:
            continue
        name, rest = line.split("{", 1)
        labels, value = rest.rsplit("} ", 1)
        fields = dict(part.split("=", 1) for part in labels.split(",") if "=" in part)
        fields = {k: v.strip('"') for k, v in fields.items()}
        if (
            name
            in ("matchday_shadow_predictions_total", "matchday_batch_size_rows_sum", "matchday_batch_size_rows_count")
            and fields.get("model") == model
        ):
            out.setdefault(fields["version"], {})[name] = out.get(fields["version"], {}).get(name, 0.0) + float(value)
        elif name == "matchday_shadow_dropped_total":
            out.setdefault("dropped", {})[name] = float(value)
    return out


def shadow_counts(m: dict[str, dict[str, float]], version: str) -> tuple[float, float, float, float]:
    v = m.get(version, {})
    return (
        v.get("matchday_shadow_predictions_total", 0.0),
        m.get("dropped", {}).get("matchday_shadow_dropped_total", 0.0),
        v.get("matchday_batch_size_rows_sum", 0.0),
        v.get("matchday_batch_size_rows_count", 0.0),
    )


def machine_busy(pids: list[int]) -> tuple[float, float]:
    """CPU seconds the whole machine and the given processes have used (Linux /proc; NaN elsewhere)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
        own = 0
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            own += int(fields[11]) + int(fields[12])  # utime, stime
    except OSError:
        return float("nan"), float("nan")
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - ticks[3] - ticks[4]) / hz, own / hz


def children(pid: int) -> list[int]:
    """The process's children (the server's shadow worker), from Linux /proc; none elsewhere."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def server_cpu(url: str) -> float:
    """CPU seconds the server process has used (user + system)."""
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("process_cpu_seconds_total "):
            return float(line.split()[1])
    return float("nan")


def settled(
    url: str, model: str, version: str, start: tuple[float, ...], mirrored: int, patience: float = 30.0
) -> tuple[float, float, float, float]:
    """The shadow's counters once every copy mirrored since ``start`` is scored or dropped."""
    now = shadow_counts(metrics(url, model), version)
    deadline = time.monotonic() + patience
    while now[0] - start[0] + now[1] - start[1] < mirrored and time.monotonic() < deadline:
        time.sleep(0.2)
        now = shadow_counts(metrics(url, model), version)
    return now


# -- the run ----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=600, help="measured requests per configuration per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each measures every configuration once")
    parser.add_argument("--clients", type=int, default=8, help="concurrent closed-loop clients")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open loop instead: requests per second arriving at random (Poisson), 32 senders",
    )
    parser.add_argument("--slowdown", type=float, default=10.0, help="how much slower per call each shadow is")
    parser.add_argument(
        "--max-trees", type=int, default=1000, help="trees trained for the cpu shadow (calibrated down)"
    )
    parser.add_argument("--database-url", default=None, help="metadata database (default: SQLite in a temp dir)")
    args = parser.parse_args()
    started_all = time.perf_counter()
    load_before = os.getloadavg()[0]  # another busy process on the machine shows here

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ws = Workspace(Settings(home=home, database_url=args.database_url))
        # a shared database may hold other runs: a name of our own
        name = "fraud" if args.database_url is None else f"fraud-shadow-{uuid.uuid4().hex[:8]}"
        registry = ws.registry
        model, train, _ = train_fraud_model()
        registry.register(name, model, reference=train, target="is_fraud")
        primary_ref = f"{name}:1"
        signature = registry.get_signature(primary_ref)
        table = transactions(400, seed=11).drop_columns(["is_fraud"])
        t_primary = per_call(registry.load(primary_ref), table, calls=100)

        wait_ms = args.slowdown * t_primary * 1000
        os.environ[shadow_models.WAIT_MS] = f"{wait_ms:.3f}"
        registry.register(
            name, "shadow_models:remote_lookup", signature=signature, description=f"sleeps {wait_ms:.1f} ms a call"
        )
        forest, trees = heavy_forest(train, signature, table, args.slowdown * t_primary, args.max_trees)
        registry.register(name, forest, reference=train, target="is_fraud", description=f"random forest, {trees} trees")
        refs = {"none": primary_ref, "wait": f"{name}:2", "cpu": f"{name}:3"}
        print("per-call latency (median, in this process; predict + predict_proba as the server calls them):")
        print(f"{'model':>28} | {'1 row ms':>9} | {'x primary':>9} | {'64 rows ms':>10} | {'x primary':>9}")
        print("-" * 78)
        loaded = {key: registry.load(ref) for key, ref in refs.items()}
        base64 = per_call(loaded["none"], table, rows=64, calls=30)
        descriptions = {
            "none": "primary (gradient boosting)",
            "wait": f"wait shadow (sleep {wait_ms:.0f} ms)",
            "cpu": f"cpu shadow (forest, {trees} trees)",
        }
        for key, predictor in loaded.items():
            one = t_primary if key == "none" else per_call(predictor, table, calls=15)
            many = base64 if key == "none" else per_call(predictor, table, rows=64, calls=10)
            print(
                f"{descriptions[key]:>28} | {one * 1000:>9.1f} | {one / t_primary:>8.1f}x | {many * 1000:>10.1f} | "
                f"{many / base64:>8.1f}x"
            )
        del loaded
        print(f"(models trained, calibrated and measured in {time.perf_counter() - started_all:.0f} s)")

        ws.deployments.deploy(name, primary_ref)
        proc, url, log = start_server(home, args.database_url, wait_ms)
        rows = transactions(max(args.requests, 2000), seed=5).drop_columns(["is_fraud"]).to_pylist()
        measured = rows[: args.requests]
        warmup = rows[-max(100, 20 * args.clients) :]
        configs = ["none", "wait", "cpu", "again"]  # "again": no shadow once more, to show the noise (A/A)
        refs["again"] = primary_ref
        shadowed = {"wait", "cpu"}
        latencies: dict[str, list[float]] = {c: [] for c in configs}
        by_round: dict[str, list[float]] = {c: [] for c in configs}
        elapsed: dict[str, float] = {c: 0.0 for c in configs}
        cpu: dict[str, float] = {c: 0.0 for c in configs}  # server CPU seconds while measuring
        other: dict[str, float] = {c: 0.0 for c in configs}  # CPU seconds of everything but server and clients
        shadow_cpu: dict[str, float] = {c: 0.0 for c in configs}  # CPU seconds of the server's shadow process
        counts: dict[str, np.ndarray] = {c: np.zeros(4) for c in configs}  # scored, dropped, batch rows, calls
        active: str | None = None
        try:
            load(url, name, warmup, args.clients)
            for r in range(args.rounds):
                order = configs[r % len(configs) :] + configs[: r % len(configs)]
                for config in order:
                    if active is not None:
                        ws.rollouts.rollback(name, reason="benchmark: next configuration")
                        active = None
                    if config in shadowed:
                        ws.rollouts.start(name, refs[config], {"strategy": "shadow"})
                        active = config
                    time.sleep(2.0)  # the server rereads its plan every second
                    version = refs[config].rsplit(":", 1)[1]
                    start = shadow_counts(metrics(url, name), version)
                    load(url, name, warmup, args.clients)
                    mirrored = len(warmup) if config in shadowed else 0
                    before = settled(url, name, version, start, mirrored)
                    if config in shadowed and before[0] + before[1] - start[0] - start[1] < mirrored:
                        raise RuntimeError(
                            f"the {config} shadow did not get every warm-up row:\n{log.read_text()[-3000:]}"
                        )
                    helpers = children(proc.pid)
                    cpu_before, busy_before = server_cpu(url), machine_busy([proc.pid, os.getpid()])
                    helpers_before = machine_busy(helpers)[1]
                    lat, seconds = (
                        load_open(url, name, measured, args.rate, seed=r)
                        if args.rate
                        else load(url, name, measured, args.clients)
                    )
                    cpu[config] += server_cpu(url) - cpu_before
                    busy_after = machine_busy([proc.pid, os.getpid()])
                    worker = machine_busy(helpers)[1] - helpers_before
                    shadow_cpu[config] += worker
                    other[config] += (busy_after[0] - busy_before[0]) - (busy_after[1] - busy_before[1]) - worker
                    after = settled(url, name, version, start, mirrored + len(measured) if mirrored else 0)
                    latencies[config] += lat
                    by_round[config].append(float(np.percentile(lat, 99)))
                    elapsed[config] += seconds
                    if config in shadowed:
                        counts[config] += np.subtract(after, before)
            if active is not None:
                ws.rollouts.rollback(name, reason="benchmark done")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            ws.close()

    none_p99 = float(np.percentile(latencies["none"], 99))
    labels = {"none": "no shadow", "wait": "wait shadow", "cpu": "cpu shadow", "again": "no shadow, A/A"}
    how = f"open loop at {args.rate:g} requests/s (Poisson)" if args.rate else f"{args.clients} closed-loop clients"
    print(
        f"\n{how}, one-row requests, {args.rounds} rounds of {args.requests} requests "
        "per configuration (order rotated); shadows mirror 100% of rows"
    )
    print(
        f"{'configuration':>15} | {'requests':>8} | {'req/s':>6} | {'p50 ms':>7} | {'p99 ms':>7} | {'p99 vs none':>11} | "
        f"{'server CPU':>10} | {'shadow CPU':>10} | {'other CPU':>9} | {'shadow scored':>13} | {'dropped':>7} | {'shadow rows/call':>16} | within 10%"
    )
    print("-" * 172)
    for config in configs:
        lat = latencies[config]
        p50, p99 = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
        scored, dropped, batch_rows, calls = counts[config]
        shadow = (
            ("-", "-", "-")
            if config not in shadowed
            else (f"{scored:,.0f}", f"{dropped:,.0f}", f"{batch_rows / calls:.1f}" if calls else "-")
        )
        verdict = "-" if config == "none" else ("yes" if p99 <= TARGET * none_p99 else "NO")
        print(
            f"{labels[config]:>15} | {len(lat):>8,} | {len(lat) / elapsed[config]:>6.0f} | "
            f"{p50 * 1000:>7.1f} | {p99 * 1000:>7.1f} | {p99 / none_p99:>10.2f}x | {cpu[config] / elapsed[config]:>9.0%} | "
            f"{shadow_cpu[config] / elapsed[config]:>9.0%} | {other[config] / elapsed[config]:>8.0%} | "
            f"{shadow[0]:>13} | {shadow[1]:>7} | "
            f"{shadow[2]:>16} | {verdict}"
        )
    print(
        "\np99 ms by round: "
        + "; ".join(f"{labels[c]} " + " / ".join(f"{p * 1000:.1f}" for p in by_round[c]) for c in configs)
    )
    print(
        "server CPU: the server process's CPU time while measuring, as a share of one core; shadow CPU: the same for "
        "its shadow process (lowest priority); other CPU: every other process but this one (the clients): another "
        "job on the machine shows here"
    )
    busiest = max(other[c] / elapsed[c] for c in configs)
    if busiest > 0.2:
        print(f"WARNING: other processes used up to {busiest:.0%} of a core while measuring; rerun on a quiet machine")
    print(
        f"total {time.perf_counter() - started_all:.0f} s; 1-minute load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after"
    )


if __name__ == "__main__":
    main()
