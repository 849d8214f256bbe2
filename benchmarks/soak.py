"""Soak: `matchday serve` with its worker under steady load for minutes; memory, tail latency, the log.

Run from the project's root after `make install` (issue 15's run: 10 minutes, a quiet machine):

    .venv/bin/python benchmarks/soak.py                                   # 10 min, 300 req/s, SQLite
    .venv/bin/python benchmarks/soak.py --minutes 1.5 --rate 100          # works end to end (judges errors, log)
    .venv/bin/python benchmarks/soak.py --minutes 1.5 --rate 100 --warmup 0.5 --window 0.5 --sample 10
    .venv/bin/python benchmarks/soak.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Setup (not measured): a temporary workspace (SQLite; with ``--database-url``, an administrator's
PostgreSQL URL, a fresh database ``matchday_bench_<random>`` beside it, dropped at the end), the
LogisticRegression pipeline on scikit-learn's breast-cancer data registered with that data as its
reference and deployed as ``bc``; then one ``matchday serve`` process as shipped: its worker beside
it (monitoring every ``MATCHDAY_MONITOR_INTERVAL``, default 5 s, with the default windows and
monitors), its log process, the prediction log. ``MATCHDAY_*`` variables of the caller's
environment are not passed on, so every setting is the default.

The load is open-loop at a fixed rate (``--rate``, default 300 requests/s, well below what one
process serves: 1,000 req/s with one connection, 3,500 with 16): request i is due at ``i / rate``
seconds, whether or not the earlier ones have been answered, and its latency is counted from that
due time to the end of its answer. A closed loop (``wrk -c4`` in one-minute slices) would instead
run the server saturated for ten minutes, which is a stress test, and would hide a stall: while the
server stalls wrk sends nothing, so the requests that would have waited are never counted
(coordinated omission; wrk2, which fixes it, is not installed). The generator is this script's own
asyncio loop on raw keep-alive HTTP/1.1 connections (up to ``--max-conns``; a request that finds
none free waits for one, and that wait is in its latency), one-row ``/v1`` requests cycling through
the 569 rows of the data set, so the worker summarises a real distribution. Its own CPU and how late
it sent are reported: if it fell behind, the latencies include its delay.

Every ``--sample`` seconds (30) the script records the resident memory (VmRSS from
``/proc/PID/status``) of the server process, its log process (the multiprocessing child) and the
worker (``matchday.cli worker``), found among the server's children by their command line (any
other descendant, e.g. multiprocessing's resource tracker, is summed as "other"), and reads the
server's ``/metrics`` for the rows its log has written. The table: per sample, the memory, and for
the requests due in the interval that ended there, how many were answered (2xx), failed, and their
p50 and p99 latency; then the log against the answers received so far.

Verdicts (the first ``--warmup`` minutes, 2, are warm-up):
- memory, per process: the largest of the last three samples against the median of the samples
  taken from the end of warm-up to a minute later (minutes 2-3); pass if it grew by 10 % or less.
- latency: p99 of the requests due in the last minute against those due in the first full minute
  after warm-up (minutes 2-3); pass if 1.20x or less.
- errors: every request answered with a 2xx status (no other status, no connection failed, none
  unanswered after ``--timeout`` seconds).
- the log: once it has stopped growing, every answered request's id is in the prediction log
  (``PredictionLogStore.request_ids``), and its row count is compared with the answers.
The exit status is 1 if a verdict fails. A run shorter than warm-up + 2 minutes is not judged on
memory and latency (its table is still printed); ``--warmup``, ``--window`` (the minute compared)
and ``--sample`` scale the windows for a short check, e.g. ``--minutes 1.5 --rate 100 --warmup 0.5
--window 0.5 --sample 10``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from bench_processes import create_database, drop_database, stop_group

VENV = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")
DEPLOYMENT = "bc"
ROLES = ("server", "log", "worker")
RSS_LIMIT = 0.10  # growth after warm-up
P99_LIMIT = 1.20  # last minute over the first full minute after warm-up
IDLE_SECONDS = 2.0  # a keep-alive connection idle longer is not reused (uvicorn closes them after 5 s)
REQUEST_ID = re.compile(rb'"request_id"\s*:\s*"([^"]+)"')


# -- setup ---------------------------------------------------------------------------------------
def environment(home: Path, url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHDAY_")}
    env["MATCHDAY_HOME"] = str(home)
    if url:
        env["MATCHDAY_DATABASE_URL"] = url
    return env


def setup(home: Path, url: str | None) -> list[dict[str, float]]:
    """Register and deploy the breast-cancer pipeline; the data set's rows (the requests' inputs)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from matchday.config import Settings
    from matchday.workspace import Workspace

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X.columns = [c.replace(" ", "_") for c in X.columns]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    ws = Workspace(Settings(home=home, database_url=url))
    try:
        ws.registry.register(DEPLOYMENT, model, reference=X)
    finally:
        ws.close()
    subprocess.run(
        [VENV / "matchday", "deploy", DEPLOYMENT, f"{DEPLOYMENT}:1"],
        env=environment(home, url),
        cwd=home,
        check=True,
        capture_output=True,
    )
    return [{k: float(v) for k, v in row.items()} for row in X.to_dict("records")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer in {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """TERM (the server flushes its log and stops its worker), KILL after 60 s."""
    stop_group(proc, 60.0)


# -- the server's processes ----------------------------------------------------------------------
def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def role_of(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "other"
    line = b" ".join(argv)
    if b"matchday.cli" in line and b"worker" in argv:
        return "worker"
    if b"multiprocessing.spawn" in line or b"--multiprocessing-fork" in argv:
        return "log"  # the only spawned child of a server without shadows (the resource tracker is not spawn_main)
    return "other"


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def processes(server: int) -> dict[str, list[int]]:
    """The server's process tree by role: server, log, worker, other."""
    tree: dict[str, list[int]] = {"server": [server], "log": [], "worker": [], "other": []}
    for pid in descendants(server):
        tree[role_of(pid)].append(pid)
    return tree


# -- the load ------------------------------------------------------------------------------------
class Connections:
    """Keep-alive HTTP/1.1 connections to one server, at most ``limit`` at a time."""

    def __init__(self, host: str, port: int, limit: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.slots = asyncio.Semaphore(limit)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.opened = 0

    async def send(self, request: bytes) -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        async with self.slots:
            conn = None
            while self.idle and conn is None:
                reader, writer, last = self.idle.pop()
                if loop.time() - last < IDLE_SECONDS and not reader.at_eof():
                    conn = reader, writer
                else:
                    writer.close()
            if conn is None:
                conn = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout)
                self.opened += 1
            reader, writer = conn
            try:
                status, body, keep = await asyncio.wait_for(exchange(reader, writer, request), self.timeout)
            except BaseException:
                writer.close()
                raise
            if keep:
                self.idle.append((reader, writer, loop.time()))
            else:
                writer.close()
            return status, body

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes, bool]:
    """One request and its answer: status, body, whether the connection stays open."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, chunked, keep = 0, False, True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            keep = value != b"close"
    if not chunked:
        return status, await reader.readexactly(length), keep
    body = bytearray()
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        body += await reader.readexactly(size)
        await reader.readexactly(2)  # the chunk's CRLF
    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, up to the empty line
        pass
    return status, bytes(body), keep


def post(host: str, port: int, path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def metric_sum(text: str, name: str) -> float | None:
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{")
    ]
    return sum(values) if values else None


@dataclass
class Sample:
    at: float  # seconds since the load began
    rss: dict[str, float]  # MB by role (summed over the role's processes)
    pids: dict[str, tuple[int, ...]]
    answered: int  # 2xx answers received by then
    logged: float | None  # the log's written rows, from /metrics
    queued: float | None  # rows waiting in the server for the log


@dataclass
class Soak:
    rate: float
    seconds: float
    due: np.ndarray  # each request's due time, seconds since the load began
    latency: np.ndarray = field(init=False)  # due time to answer, seconds (NaN: no answer)
    status: np.ndarray = field(init=False)  # HTTP status; 0: failed without one
    late: np.ndarray = field(init=False)  # how late the generator started each request
    samples: list[Sample] = field(default_factory=list)
    ids: list[bytes] = field(default_factory=list)  # request ids of the 2xx answers
    answered: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    client_cpu: float = 0.0
    server_cpu: dict[str, float] = field(default_factory=dict)
    connections: int = 0

    def __post_init__(self) -> None:
        n = len(self.due)
        self.latency = np.full(n, np.nan)
        self.status = np.zeros(n, dtype=np.int32)
        self.late = np.zeros(n)


async def drive(
    soak: Soak,
    server: int,
    host: str,
    port: int,
    requests: list[bytes],
    sample_every: float,
    limit: int,
    timeout: float,
) -> None:
    loop = asyncio.get_running_loop()
    conns = Connections(host, port, limit, timeout)
    metrics = f"GET /metrics HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
    inflight: set[asyncio.Task[None]] = set()
    cpu_start = time.process_time()
    tree_cpu = {role: sum(cpu_seconds(p) for p in pids) for role, pids in processes(server).items()}

    async def one(i: int, due: float) -> None:
        soak.late[i] = loop.time() - due
        try:
            status, body = await conns.send(requests[i % len(requests)])
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            kind = type(exc).__name__
            soak.failures[kind] = soak.failures.get(kind, 0) + 1
            return
        soak.latency[i] = loop.time() - due
        soak.status[i] = status
        if 200 <= status < 300:
            soak.answered += 1
            soak.ids += REQUEST_ID.findall(body)

    async def sample(at: float) -> None:
        tree = processes(server)
        logged = queued = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            try:
                status, body, _ = await asyncio.wait_for(exchange(reader, writer, metrics), timeout)
            finally:
                writer.close()
            if status == 200:
                text = body.decode()
                logged = metric_sum(text, "matchday_prediction_log_written_rows")
                queued = metric_sum(text, "matchday_prediction_log_queue_rows")
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            pass
        soak.samples.append(
            Sample(
                at,
                {role: sum(rss_mb(p) for p in pids) for role, pids in tree.items()},
                {role: tuple(pids) for role, pids in tree.items()},
                soak.answered,
                logged,
                queued,
            )
        )
        s = soak.samples[-1]
        print(
            f"  {at / 60:5.2f} min: RSS server {s.rss['server']:.0f} MB, log {s.rss['log']:.0f} MB, worker "
            f"{s.rss['worker']:.0f} MB; {s.answered:,} answered, {logged or 0:,.0f} logged",
            file=sys.stderr,
            flush=True,
        )

    async def sampler() -> None:  # on its own, so that sampling never holds the requests back
        ticks = [k * sample_every for k in range(1, int(soak.seconds / sample_every + 1e-9) + 1)]
        if not ticks or ticks[-1] < soak.seconds - 1e-9:
            ticks.append(soak.seconds)
        for at in ticks:
            await asyncio.sleep(max(0.0, t0 + at - loop.time()))
            await sample(at)

    await sample(0.0)
    t0 = loop.time()
    sampling = asyncio.create_task(sampler())
    for i, due in enumerate(soak.due.tolist()):
        wait = t0 + due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        task = asyncio.create_task(one(i, t0 + due))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
    await sampling
    if inflight:
        await asyncio.wait(inflight, timeout=timeout + 5)
    soak.client_cpu = time.process_time() - cpu_start
    soak.server_cpu = {
        role: sum(cpu_seconds(p) for p in pids) - tree_cpu.get(role, 0.0) for role, pids in processes(server).items()
    }
    soak.connections = conns.opened
    conns.close()


# -- after the load ------------------------------------------------------------------------------
def logged_ids(home: Path, url: str | None, answered: int, patience: float = 60.0) -> tuple[set[bytes], int]:
    """The request ids in the log once it holds every answer or has stopped growing; and its row count."""
    from matchday.config import Settings
    from matchday.store import PredictionLogStore
    from matchday.workspace import Workspace

    ws = Workspace(Settings(home=home, database_url=url))
    try:
        store = PredictionLogStore(ws.database)
        last, same_since, deadline = -1, time.monotonic(), time.monotonic() + patience
        while time.monotonic() < deadline:
            count = store.count(DEPLOYMENT, roles=None, errors=None)
            if count >= answered:
                break
            if count != last:
                last, same_since = count, time.monotonic()
            elif time.monotonic() - same_since > 3.0:
                break
            time.sleep(0.5)
        ids = {i.encode() for i in store.request_ids(DEPLOYMENT)}
        return ids, store.count(DEPLOYMENT, roles=None, errors=None)
    finally:
        ws.close()


def percentile_ms(latency: np.ndarray, q: float) -> float:
    return float(np.percentile(latency, q) * 1000) if len(latency) else float("nan")


def report(soak: Soak, warmup: float, window: float, logged: set[bytes], log_rows: int) -> bool:
    ok_mask = (soak.status >= 200) & (soak.status < 300)
    print(
        f"\n{'min':>5} | {'server MB':>9} | {'log MB':>6} | {'worker MB':>9} | {'other MB':>8} | {'due':>6} | "
        f"{'2xx':>6} | {'failed':>6} | {'p50 ms':>7} | {'p99 ms':>7} | {'answered':>9} | {'logged':>9} | {'queued':>6}"
    )
    print("-" * 128)
    previous: dict[str, tuple[int, ...]] = {}
    restarted: list[str] = []
    for k, s in enumerate(soak.samples):
        lo, hi = (soak.samples[k - 1].at, s.at) if k else (0.0, 0.0)
        in_interval = (soak.due >= lo) & (soak.due < hi)
        ok = soak.latency[in_interval & ok_mask]
        due = int(in_interval.sum())
        marks = ""
        for role in ROLES:
            if previous and s.pids[role] != previous[role]:
                marks += f" {role} pid {previous[role]} -> {s.pids[role]}"
                restarted.append(role)
        previous = s.pids
        interval = (
            f"{due:>6,} | {len(ok):>6,} | {due - len(ok):>6,} | {percentile_ms(ok, 50):>7.2f} | {percentile_ms(ok, 99):>7.2f}"
            if k
            else f"{'':>6} | {'':>6} | {'':>6} | {'':>7} | {'':>7}"
        )
        logged_now = f"{s.logged:>9,.0f}" if s.logged is not None else f"{'?':>9}"
        queued_now = f"{s.queued:>6,.0f}" if s.queued is not None else f"{'?':>6}"
        print(
            f"{s.at / 60:>5.2f} | {s.rss['server']:>9.1f} | {s.rss['log']:>6.1f} | {s.rss['worker']:>9.1f} | "
            f"{s.rss['other']:>8.1f} | {interval} | {s.answered:>9,} | {logged_now} | {queued_now}{marks}"
        )

    total = len(soak.due)
    answered = int(ok_mask.sum())
    late = soak.late * 1000
    cpu = soak.server_cpu
    print(
        f"\n{total:,} requests due at {soak.rate:g}/s over {soak.seconds / 60:g} min; {answered:,} answered 2xx; "
        f"{soak.connections} connections opened"
    )
    print(
        f"load generator: {soak.client_cpu / soak.seconds:.0%} of a core; sent late by p99 {np.percentile(late, 99):.2f} ms, "
        f"max {late.max():.1f} ms (included in the latencies)"
    )
    print(
        "server CPU per answered request (us): "
        + ", ".join(f"{role} {cpu.get(role, 0.0) / max(answered, 1) * 1e6:.0f}" for role in (*ROLES, "other"))
        + f"; {sum(cpu.values()) / soak.seconds:.0%} of a core in all; load average {os.getloadavg()[0]:.2f}"
    )

    verdicts: list[bool] = []
    print(f"\nverdict (warm-up: the first {warmup:g} min)")
    end = soak.seconds
    base_lo, base_hi = warmup * 60, (warmup + window) * 60
    judged = end >= base_hi + window * 60 - 1e-9
    if not judged:
        print(
            f"  memory and p99: not judged, the run is shorter than warm-up + 2 windows ({warmup + 2 * window:g} min)"
        )
    else:
        baseline = [s for s in soak.samples if base_lo - 1e-6 <= s.at <= base_hi + 1e-6]
        last = soak.samples[-3:]
        for role in ROLES:
            base = statistics.median(s.rss[role] for s in baseline)
            top = max(s.rss[role] for s in last)
            growth = top / base - 1 if base else float("nan")
            passed = bool(growth <= RSS_LIMIT)
            verdicts.append(passed)
            print(
                f"  RSS {role:<7} median at {base_lo / 60:g}-{base_hi / 60:g} min {base:7.1f} MB, max of the last 3 "
                f"samples {top:7.1f} MB: {growth:+6.1%} (limit +{RSS_LIMIT:.0%})  {'PASS' if passed else 'FAIL'}"
                + ("  (restarted during the run)" if role in restarted else "")
            )
        first = soak.latency[ok_mask & (soak.due >= base_lo) & (soak.due < base_hi)]
        final = soak.latency[ok_mask & (soak.due >= end - window * 60)]
        p99_first, p99_last = percentile_ms(first, 99), percentile_ms(final, 99)
        ratio = p99_last / p99_first
        passed = bool(ratio <= P99_LIMIT)
        verdicts.append(passed)
        print(
            f"  p99     {base_lo / 60:g}-{base_hi / 60:g} min {p99_first:.2f} ms ({len(first):,} requests), the last {window:g} min "
            f"{p99_last:.2f} ms ({len(final):,}): {ratio:.2f}x (limit {P99_LIMIT:.2f}x)  {'PASS' if passed else 'FAIL'}"
        )
    other_status = int(((soak.status != 0) & ~ok_mask).sum())
    unanswered = total - int((soak.status != 0).sum())
    failed = other_status + unanswered
    verdicts.append(failed == 0)
    detail = ", ".join(f"{n} {kind}" for kind, n in sorted(soak.failures.items()))
    print(
        f"  errors  {other_status} non-2xx answers, {unanswered} without an answer"
        + (f" ({detail})" if detail else "")
        + f"  {'PASS' if failed == 0 else 'FAIL'}"
    )
    answered_ids = set(soak.ids)
    missing = len(answered_ids - logged)
    passed = missing == 0 and len(answered_ids) == answered
    verdicts.append(passed)
    print(
        f"  log     {answered:,} answered, {log_rows:,} rows logged; {len(answered_ids) - missing:,} of the "
        f"{len(answered_ids):,} answered request ids found in the log"
        + (f", {missing:,} MISSING" if missing else "")
        + (f", {answered - len(answered_ids):,} answers without a request id" if len(answered_ids) != answered else "")
        + f"  {'PASS' if passed else 'FAIL'}"
    )
    if log_rows > answered:
        print(
            f"          ({log_rows - answered:,} more rows than answers: requests the server answered after this script gave up)"
        )
    result = all(verdicts)
    print(f"  overall {'PASS' if result else 'FAIL'}" + ("" if judged else " (errors and the log only)"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=300.0, help="requests per second, open loop")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=2.0, help="minutes of warm-up, not judged")
    parser.add_argument("--window", type=float, default=1.0, help="minutes compared: after warm-up, and at the end")
    parser.add_argument("--max-conns", type=int, default=64, help="connections the load may open at most")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a request may take")
    parser.add_argument("--database-url", help="PostgreSQL admin URL; a fresh database is created beside it")
    parser.add_argument("--serve-args", default="", help="extra arguments for matchday serve")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (and database)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="matchday-soak-"))
    home = work / "home"
    home.mkdir()
    url = create_database(args.database_url) if args.database_url else None
    proc = None
    try:
        rows = setup(home, url)
        port = free_port()
        host = "127.0.0.1"
        command = [str(VENV / "matchday"), "serve", "--host", host, "--port", str(port), *args.serve_args.split()]
        server_log = work / "serve.log"
        with open(server_log, "ab") as out:
            proc = subprocess.Popen(
                command,
                env=environment(home, url),
                cwd=work,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_up(f"http://{host}:{port}/v2/health/ready", proc)
        except RuntimeError as exc:
            sys.exit(f"matchday serve: {exc}\n{server_log.read_text()[-3000:]}")
        path = f"/v1/deployments/{DEPLOYMENT}/predict"
        requests = [post(host, port, path, json.dumps({"instances": [row]}).encode()) for row in rows]
        seconds = args.minutes * 60
        soak = Soak(args.rate, seconds, np.arange(int(seconds * args.rate)) / args.rate)
        print(
            f"soak: {args.minutes:g} min at {args.rate:g} requests/s, open loop; one-row requests; "
            f"matchday serve {' '.join(command[2:])} ({'PostgreSQL' if url else 'SQLite'}, worker beside it); "
            f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores",
            flush=True,
        )
        asyncio.run(drive(soak, proc.pid, host, port, requests, args.sample, args.max_conns, args.timeout))
        logged, log_rows = logged_ids(home, url, soak.answered)
        if proc.poll() is not None:
            print(f"the server exited during the run ({proc.returncode}):\n{server_log.read_text()[-3000:]}")
        passed = report(soak, args.warmup, args.window, logged, log_rows)
    finally:
        if proc is not None:
            stop(proc)
        if args.keep:
            print(f"kept {work}" + (f" and {url}" if url else ""), file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
            if url and args.database_url:
                drop_database(args.database_url, url)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
