"""Dashboard pages over 10,000 and 1,000,000 logged predictions, side by side with an Evidently report.

Run: .venv/bin/python benchmarks/dashboard.py --workdir DIR [--from-large DIR] [--small 10000] [--large 1000000]
     [--requests 20] [--evidently-large-rows N] [--prepare-only]

Setup (not measured; kept in ``--workdir`` and reused by later runs): two SQLite workspaces made as
`window_summary.py` makes them (its functions are imported): a 25-feature classification model
registered with a 20,000-row reference, and N rows logged within one hour (2026-11-20 12:00-13:00
UTC), with x0, x1, x2, c0 and c1 drifting in the second half. ``--from-large DIR`` copies a workspace
that `window_summary.py --workdir DIR --setup-only` already logged (a million rows take minutes to
log). Each workspace then gets a deployment of the model and one tick of the monitoring loop as the
server runs it (default settings: 5m, 1h and 1d windows, count windows of 1,000 rows, the default
monitors and one more in the workspace's matchday.yaml), at 14:00 that day, so the windows, alerts
and monitor state exist as they would.

Measured: both workspaces are served at once by real `matchday serve` processes on 127.0.0.1 (one
each, default settings plus that monitor, their monitoring loops running), and every page is fetched
with httpx: one warm-up, then ``--requests`` times (a quarter as many for a page whose warm-up took
over 2 s), alternating between the two servers so that whatever else the machine does falls on both.
Ranges are given as since/until around the logged hour (the presets count back from the wall clock,
which is a week later).

The peer: what a user of the glued stack does to see the same drift. In a fresh process, the hour's
answered rows are read from the same SQLite table with ``pd.read_sql``, their JSON inputs parsed
(orjson) into a DataFrame, and Evidently's DataDriftPreset runs against the reference Parquet file
(reading the reference included), after one untimed run on 1,000 rows has loaded what Evidently
imports lazily (as in a notebook that already ran a report; a fresh process pays seconds more).
Rendering Evidently's HTML is not counted, so the peer's time is a lower bound of what a user waits
for. ``--evidently-large-rows N`` reads only the first N rows of the large hour (say so if used).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import window_summary as bench  # noqa: E402  (the setup is shared, not copied)

MATCHDAY = Path(sys.executable).parent / "matchday"
HOUR = (bench.T0, bench.T0 + timedelta(hours=1))
TICK_AT = bench.T0 + timedelta(hours=2)
SLOW = 2.0  # seconds: a page whose warm-up took longer is fetched a quarter as often
READY = "dashboard-ready.json"
# One monitor besides the defaults (which stay silent here: 5 of 25 inputs drift, under their 0.3),
# so that the alerts page and the overview have an alert to show; the server reads the same file.
CONFIG = """\
monitors:
  - name: input-drift
    metric: drift_share
    window: 5m
    when: ">= 0.1"
    breaches: 2
"""


def iso(at: Any) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def pages(deployment: str, model: str, count_window: int) -> list[tuple[str, str, dict[str, str]]]:
    """(label, path, query) of every page, around the logged hour; the last two choose the count window,
    which the pages offer in their window picker."""
    hour = {"since": iso(HOUR[0]), "until": iso(HOUR[1])}
    day = {"since": iso(HOUR[1] - timedelta(hours=24)), "until": iso(HOUR[1])}
    rows = {**hour, "window": f"{count_window}rows"}
    d = f"/deployments/{deployment}"
    return [
        ("overview /", "/", {}),
        ("deployment, 1h", d, hour),
        ("deployment, 24h", d, day),
        ("drift x0 (numeric), 1h", f"{d}/drift/x0", hour),
        ("drift c0 (categorical), 1h", f"{d}/drift/c0", hour),
        ("drift x0, 24h", f"{d}/drift/x0", day),
        ("rollout", f"{d}/rollout", {}),
        ("models", "/models", {}),
        (f"model {model}", f"/models/{model}", {}),
        ("alerts", "/alerts", {}),
        (f"deployment, 1h by {count_window}rows", d, rows),
        (f"drift x0, 1h by {count_window}rows", f"{d}/drift/x0", rows),
    ]


# -- setup (not measured) ------------------------------------------------------------------------
def prepare(home: Path, rows: int, source: Path | None) -> dict[str, Any]:
    """A workspace with ``rows`` logged rows, a deployment and one monitoring tick; reused when ready."""
    ready = home / READY
    if ready.exists():
        return json.loads(ready.read_text())
    logged = home / "logged.json"
    if not logged.exists():
        if source is not None:
            found = json.loads((source / "logged.json").read_text())
            if (found["rows"], found["url"]) != (rows, None):
                sys.exit(f"{source} holds {found['rows']:,} rows ({found['url'] or 'SQLite'}), not {rows:,} in SQLite")
            print(f"setup: copying {source} to {home} ...", file=sys.stderr, flush=True)
            shutil.rmtree(home, ignore_errors=True)
            shutil.copytree(source, home)
        else:
            print(f"setup: logging {rows:,} rows into {home} ...", file=sys.stderr, flush=True)
            home.mkdir(parents=True, exist_ok=True)
            bench.setup(home, None, rows)
            logged.write_text(json.dumps({"rows": rows, "admin_url": None, "url": None}))
    import sqlalchemy as sa

    from matchday.config import load_settings
    from matchday.store import AlertStore
    from matchday.workspace import Workspace, build_monitoring

    warnings.filterwarnings("ignore")
    (home / "matchday.yaml").write_text(CONFIG)
    ws = Workspace(load_settings({"MATCHDAY_HOME": str(home)}, home / "matchday.yaml"))
    version = max(v.version for v in ws.registry.list_versions(bench.MODEL))
    ws.deployments.deploy(bench.DEPLOYMENT, f"{bench.MODEL}:{version}")
    with ws.database.session(write=True) as s:  # window_summary.py's runs leave windows and a cursor: start afresh
        for table in ("metric_windows", "monitor_state", "alerts"):
            s.execute(sa.text(f"DELETE FROM {table}"))
    print(f"setup: one monitoring tick over {rows:,} rows ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    result = build_monitoring(ws).tick(TICK_AT)
    with ws.database.session() as s:
        widths = dict(s.execute(sa.text("SELECT width, count(*) FROM metric_windows GROUP BY width")).all())
    info = {
        "rows": result.rows,
        "tick_seconds": round(time.perf_counter() - started, 1),
        "windows": widths,
        "alerts": len(AlertStore(ws.database).list(None, limit=1000)),
        "version": version,
        "count_window": ws.settings.monitoring.count_window,
    }
    ws.close()
    ready.write_text(json.dumps(info))
    print(
        f"setup: tick took {info['tick_seconds']} s: windows {widths}, {info['alerts']} alerts",
        file=sys.stderr,
        flush=True,
    )
    return info


# -- the pages -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`matchday serve` over ``home``, run from that folder: it reads the workspace's matchday.yaml."""
    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHDAY_")}
    env["MATCHDAY_HOME"] = str(home)
    log = open(home / "serve.log", "wb")  # noqa: SIM115  (closed with the process)
    process = subprocess.Popen(
        [str(MATCHDAY), "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=home,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"matchday serve over {home} stopped: see {home / 'serve.log'}")
        try:
            if httpx.get(f"{base}/v2/health/ready", timeout=5).json().get("ready"):
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.terminate()
    sys.exit(f"matchday serve over {home} did not get ready in 180 s")


def time_pages(
    bases: dict[str, str], targets: list[tuple[str, str, dict[str, str]]], requests: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per page and server: one warm-up, then ``requests`` timed GETs, alternating between the servers."""
    import httpx

    out: dict[str, dict[str, dict[str, Any]]] = {}
    clients = {name: httpx.Client(base_url=base, timeout=300) for name, base in bases.items()}
    try:
        for label, path, query in targets:
            out[label] = {}
            slowest = 0.0
            for name, client in clients.items():
                start = time.perf_counter()
                warm = client.get(path, params=query)
                slowest = max(slowest, time.perf_counter() - start)
                if warm.status_code != 200:
                    sys.exit(f"{name} {path} {query}: {warm.status_code}\n{warm.text[:2000]}")
                out[label][name] = {"ms": [], "kb": len(warm.content) / 1024}
            n = requests if slowest < SLOW else max(3, requests // 4)  # a page of seconds: fewer requests
            for i in range(n):
                order = list(clients) if i % 2 == 0 else list(reversed(clients))
                for name in order:
                    start = time.perf_counter()
                    response = clients[name].get(path, params=query)
                    out[label][name]["ms"].append(1000 * (time.perf_counter() - start))
                    if response.status_code != 200:
                        sys.exit(f"{name} {path}: {response.status_code}")
            print(
                f"  {label}: " + ", ".join(f"{n} {statistics.median(v['ms']):.1f} ms" for n, v in out[label].items()),
                file=sys.stderr,
                flush=True,
            )
    finally:
        for client in clients.values():
            client.close()
    return out


# -- the peer: read the hour's rows, Evidently's DataDriftPreset (in a fresh process) --------------
def run_evidently(home: Path, limit: int | None) -> dict[str, Any]:
    import orjson
    import pandas as pd
    import sqlalchemy as sa
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    engine = sa.create_engine(f"sqlite:///{(home / 'matchday.db').absolute()}")
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    definition = DataDefinition(numerical_columns=bench.NUMERIC, categorical_columns=bench.CATEGORICAL)
    # not measured: one small run loads what Evidently imports lazily, as a notebook that ran a report has
    sample = Dataset.from_pandas(pd.read_parquet(home / "reference.parquet").head(1000), data_definition=definition)
    Report([DataDriftPreset()]).run(current_data=sample, reference_data=sample)
    baseline = bench.current_mb()
    start = time.perf_counter()
    query = (
        "SELECT inputs FROM prediction_log WHERE deployment = :d AND role IN ('served', 'failed_over') "
        "AND error IS NULL AND at >= :since AND at < :until ORDER BY id"
    )
    query += f" LIMIT {int(limit)}" if limit else ""
    stored = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy keeps a DateTime in SQLite
    frame = pd.read_sql(
        sa.text(query),
        engine,
        params={"d": bench.DEPLOYMENT, "since": HOUR[0].strftime(stored), "until": HOUR[1].strftime(stored)},
    )
    current = pd.DataFrame.from_records([orjson.loads(v) for v in frame["inputs"]], columns=bench.FEATURES)
    current[bench.NUMERIC] = current[bench.NUMERIC].astype("float64")
    del frame
    read = time.perf_counter() - start
    reference = pd.read_parquet(home / "reference.parquet")
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    total = time.perf_counter() - start
    drifted = []
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            p_value = "p_value" in config["method"]
            value, threshold = float(metric["value"]), float(config["threshold"])
            if (value < threshold) if p_value else (value >= threshold):
                drifted.append(config["column"])
    return {
        "rows": len(current),
        "read_s": read,
        "report_s": total - read,
        "total_s": total,
        "peak_mb": bench.peak_mb(),
        "extra_mb": bench.peak_mb() - baseline,
        "drifted": sorted(drifted, key=bench.FEATURES.index),
    }


def evidently(home: Path, limit: int | None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", str(home)] + (["--limit", str(limit)] if limit else [])
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"Evidently over {home} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def matchday_hour_drift(home: Path) -> list[str]:
    """The inputs the hour's window flags (what the dashboard shows), to set beside Evidently's."""
    from matchday.config import Settings
    from matchday.store import WindowStore
    from matchday.workspace import Workspace

    ws = Workspace(Settings(home=home))
    try:
        hour = [w for w in WindowStore(ws.database).series(bench.DEPLOYMENT, "1h") if w.segment == ""]
        return [f for f in bench.FEATURES if hour and hour[-1].metrics.get(f"drift_detected.{f}")]
    finally:
        ws.close()


# -- the table -----------------------------------------------------------------------------------
def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", help="the two workspaces live here (kept and reused)")
    parser.add_argument("--from-large", help="a window_summary.py --workdir with --large rows logged, to copy")
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--evidently-repeat", type=int, default=3, help="Evidently runs on the small workspace")
    parser.add_argument(
        "--evidently-large-rows", type=int, help="Evidently reads only the first N rows of the large hour"
    )
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    if args.child:
        warnings.filterwarnings("ignore")
        print(json.dumps(run_evidently(Path(args.child), args.limit)))
        return

    if not args.workdir:
        parser.error("--workdir is required")
    work = Path(args.workdir).absolute()
    homes = {"small": work / "small", "large": work / "large"}
    sizes = {"small": args.small, "large": args.large}
    info = {
        "small": prepare(homes["small"], args.small, None),
        "large": prepare(homes["large"], args.large, Path(args.from_large) if args.from_large else None),
    }
    if args.prepare_only:
        return
    load_before = os.getloadavg()
    servers = {name: start_server(home) for name, home in homes.items()}
    try:
        time.sleep(10)  # let each loop's first tick (nothing new to read) and the controller settle
        targets = pages(bench.DEPLOYMENT, bench.MODEL, info["large"]["count_window"])
        timed = time_pages({name: base for name, (_, base) in servers.items()}, targets, args.requests)
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(60)
    peer: dict[str, list[dict[str, Any]]] = {"small": [], "large": []}
    for i in range(args.evidently_repeat):
        peer["small"].append(evidently(homes["small"], None))
        print(
            f"  Evidently, {args.small:,} rows, run {i + 1}: {peer['small'][-1]['total_s']:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    peer["large"].append(evidently(homes["large"], args.evidently_large_rows))
    print(
        f"  Evidently, {peer['large'][-1]['rows']:,} rows: {peer['large'][-1]['total_s']:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    load_after = os.getloadavg()

    small, large = f"{args.small:,}", f"{args.large:,}"
    print(
        f"\nDashboard pages (matchday serve, SQLite) over {small} and {large} logged predictions in one hour; "
        f"median and p95 of {args.requests} GETs after a warm-up"
    )
    print(
        f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; "
        f"after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}"
    )
    for name in ("small", "large"):
        i = info[name]
        print(
            f"  {sizes[name]:>9,} rows: windows {i['windows']}, {i['alerts']} alerts "
            f"(setup tick {i['tick_seconds']} s, not measured)"
        )
    head = (
        f"{'page':<34} | {f'{small} ms':>11} | {'p95':>7} | {f'{large} ms':>13} | {'p95':>8} | "
        f"{'ratio':>8} | {'n':>3} | {'KB':>11}"
    )
    print(
        f"ratio: median over {large} rows / median over {small}; n: timed GETs per server; KB: page size over {small}/{large}"
    )
    print(head)
    print("-" * len(head))
    for label, _, _ in targets:
        a, b = timed[label]["small"], timed[label]["large"]
        ma, mb = statistics.median(a["ms"]), statistics.median(b["ms"])
        print(
            f"{label:<34} | {ma:>11.1f} | {p95(a['ms']):>7.1f} | {mb:>13.1f} | {p95(b['ms']):>8.1f} | "
            f"{mb / ma:>7.2f}x | {len(a['ms']):>3} | {a['kb']:>4.0f}/{b['kb']:<6.0f}"
        )
    print("-" * len(head))
    rows_large = peer["large"][-1]["rows"]
    note = "" if not args.evidently_large_rows else f" (first {rows_large:,} rows only)"
    for key, what in (
        ("read_s", "read rows: read_sql + JSON"),
        ("report_s", "Evidently DataDriftPreset run"),
        ("total_s", "Evidently: read + report"),
    ):
        ma = 1000 * statistics.median(r[key] for r in peer["small"])
        mb = 1000 * peer["large"][-1][key]
        print(f"{what:<34} | {ma:>11.0f} | {'':>7} | {mb:>13.0f} | {'':>8} | {mb / ma:>7.1f}x | {'':>3} |{note}")
    drill = statistics.median(timed["drift x0 (numeric), 1h"]["large"]["ms"])
    total = 1000 * peer["large"][-1]["total_s"]
    print(
        f"\nEvidently over {rows_large:,} rows / the x0 drift drill-down page over {large}: "
        f"{total:,.0f} ms / {drill:.1f} ms = {total / drill:,.0f}x"
    )
    print(
        f"Evidently runs over {small} rows (s): "
        + ", ".join(f"{r['total_s']:.2f}" for r in peer["small"])
        + f"; peak MB {small}: {max(r['peak_mb'] for r in peer['small']):.0f}, "
        f"{rows_large:,}: {peer['large'][-1]['peak_mb']:.0f}"
    )
    for name in ("small", "large"):
        theirs = peer[name][-1]
        print(
            f"drifted over the hour, {sizes[name]:,} rows: matchday's 1h window "
            f"{', '.join(matchday_hour_drift(homes[name])) or 'none'} | Evidently ({theirs['rows']:,} rows) "
            f"{', '.join(theirs['drifted']) or 'none'}"
        )


if __name__ == "__main__":
    main()
