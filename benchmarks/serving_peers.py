"""Online serving side by side: `matchday serve` against MLflow, MLServer and a bare FastAPI app.

Run from the project's root after `make install` (wrk from `make wrk`):

    .venv/bin/python benchmarks/serving_peers.py                          # 16 connections, 2 rounds
    .venv/bin/python benchmarks/serving_peers.py --conns 1,8,16,64
    .venv/bin/python benchmarks/serving_peers.py --serve-args="--workers 2"

The procedure of `../shared/bench/serving_vs_peers.sh` (same peer files, model, payloads and peer
environments in ``$TMPDIR/matchday-peers``; each server started, used as soon as its port answers,
``wrk -t1 -d10s`` on 127.0.0.1, best of the rounds), and beside requests/s and latency: the CPU each
server used per request (its process and every process it started: matchday's worker and log
process, MLServer's model workers), and for matchday a check that every answered request was logged.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench_processes import stop_group

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "bench"
PEERS = SHARED / "peers"
VENV = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")
SERVERS = ("matchday", "bare", "mlflow", "mlserver")


@dataclass
class Run:
    server: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # server CPU (all its processes) per answered request
    answered: int
    failed: int
    logged: int | None = None  # matchday: rows the log gained


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peer_venvs(peers: Path) -> tuple[Path, Path]:
    """The peers' environments, made as the shared script makes them (cached between runs)."""
    mlflow, mlserver = peers / "mlflow", peers / "mlserver"
    if not (mlflow / "bin" / "mlflow").exists():
        subprocess.run(["python3", "-m", "venv", str(mlflow)], check=True)
        subprocess.run([mlflow / "bin" / "pip", "install", "-q", "mlflow", "scikit-learn"], check=True)
    if not (mlserver / "bin" / "mlserver").exists():
        subprocess.run(["python3", "-m", "venv", str(mlserver)], check=True)
        subprocess.run(
            [mlserver / "bin" / "pip", "install", "-q", "mlserver==1.7.*", "mlserver-sklearn==1.7.*", "scikit-learn"],
            check=True,
        )
    return mlflow, mlserver


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and all its descendants now."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        p = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(p)
        ticks[p] = int(fields[11]) + int(fields[12])  # utime, stime
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += ticks.get(p, 0)
        todo += children.get(p, [])
    return total / TICK


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    """Until the port answers anything, as the shared script waits (matchday listens once warm)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.25)
    raise RuntimeError(f"{url} did not come up in {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """As the shared script stops it: TERM, then KILL after 10 s."""
    stop_group(proc, 10.0)


def wrk(url: str, script: Path, conns: int, seconds: int) -> tuple[float, float, float, int, int]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    answered = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    failed = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    return rps, _ms(out, "50%"), _ms(out, "99%"), answered, failed


def _ms(out: str, label: str) -> float:
    value = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if value is None:
        return float("nan")
    number, unit = float(value.group(1)), value.group(2)
    return number / 1000 if unit == "us" else number * 1000 if unit == "s" else number


def logged_rows(home: Path) -> int:
    from matchday.config import Settings
    from matchday.store import PredictionLogStore
    from matchday.workspace import Workspace

    ws = Workspace(Settings(home=home))
    try:
        return PredictionLogStore(ws.database).count("bc", roles=None, errors=None)
    finally:
        ws.close()


def settled_count(home: Path) -> int:
    """The log's row count once it has stopped growing (the log process ships within a second)."""
    last, same_since = -1, time.monotonic()
    while True:
        now = logged_rows(home)
        if now != last:
            last, same_since = now, time.monotonic()
        elif time.monotonic() - same_since > 1.5:
            return now
        time.sleep(0.3)


def start(
    server: str, work: Path, mlflow: Path, mlserver: Path, serve_args: list[str]
) -> tuple[subprocess.Popen[bytes], str, str, Path]:
    port = free_port()
    env = {**os.environ, "MATCHDAY_HOME": str(work / "home")}
    env.pop("MATCHDAY_DATABASE_URL", None)
    log = open(work / f"{server}.log", "ab")  # noqa: SIM115 (the server's life, not this block's)
    if server == "matchday":
        command = [str(VENV / "matchday"), "serve", "--host", "127.0.0.1", "--port", str(port), *serve_args]
        ready, path, cwd = "/v2/health/ready", "/v1/deployments/bc/predict", work
    elif server == "bare":
        command = [str(VENV / "uvicorn"), "--app-dir", str(PEERS), "bare_app:app", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--log-level", "warning"]
        ready, path, cwd = "/ping", "/invocations", work
    elif server == "mlflow":
        env["PATH"] = f"{mlflow / 'bin'}:{env['PATH']}"  # it runs uvicorn from PATH
        command = [str(mlflow / "bin" / "mlflow"), "models", "serve", "-m", str(work / "mlmodel"), "-h", "127.0.0.1"]
        command += ["-p", str(port), "--env-manager", "local"]
        ready, path, cwd = "/ping", "/invocations", work
    else:
        repo = work / "msrepo"
        shutil.rmtree(repo, ignore_errors=True)
        subprocess.run(
            [mlserver / "bin" / "python", PEERS / "mlserver_model.py", repo, str(port)], check=True, capture_output=True
        )
        command = [str(mlserver / "bin" / "mlserver"), "start", "."]
        ready, path, cwd = "/v2/health/ready", "/v2/models/bc/infer", repo
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}{ready}", f"http://127.0.0.1:{port}{path}", work / f"{server}.lua"


def measure(
    server: str, work: Path, mlflow: Path, mlserver: Path, conns: int, seconds: int, serve_args: list[str]
) -> Run:
    proc, ready, url, script = start(server, work, mlflow, mlserver, serve_args)
    try:
        try:
            wait_up(ready, proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{server}: {exc}\n{(work / f'{server}.log').read_text()[-2000:]}") from exc
        before_rows = logged_rows(work / "home") if server == "matchday" else None
        cpu = tree_cpu(proc.pid)
        rps, p50, p99, answered, failed = wrk(url, script, conns, seconds)
        cpu = tree_cpu(proc.pid) - cpu
        logged = settled_count(work / "home") - before_rows if before_rows is not None else None
    finally:
        stop(proc)
    return Run(server, rps if not failed else 0.0, p50, p99, cpu / max(answered, 1) * 1e6, answered, failed, logged)


def setup(work: Path, mlflow: Path) -> None:
    subprocess.run([sys.executable, PEERS / "payloads.py", work], check=True)
    subprocess.run(
        [mlflow / "bin" / "python", PEERS / "mlflow_model.py", work / "mlmodel"], check=True, capture_output=True
    )
    env = {**os.environ, "MATCHDAY_HOME": str(work / "home")}
    env.pop("MATCHDAY_DATABASE_URL", None)
    register = """
import matchday
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
X, y = load_breast_cancer(return_X_y=True, as_frame=True)
X.columns = [c.replace(" ", "_") for c in X.columns]
matchday.register_model("bc", make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y), reference=X)
"""
    subprocess.run([sys.executable, "-c", register], env=env, cwd=work, check=True)
    subprocess.run([VENV / "matchday", "deploy", "bc", "bc:1"], env=env, cwd=work, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conns", default="16", help="comma-separated connection counts")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve-args", default="", help='extra arguments for matchday serve, e.g. "--workers 2"')
    parser.add_argument("--servers", default=",".join(SERVERS))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: `make wrk` installs it")
    mlflow, mlserver = peer_venvs(Path(os.environ.get("PEERS_DIR", Path(tempfile.gettempdir()) / "matchday-peers")))
    servers = [s for s in args.servers.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="serving-peers.") as tmp:
        work = Path(tmp)
        setup(work, mlflow)
        print(f"wrk -t1 -d{args.seconds}s, best of {args.rounds} rounds; matchday serve {args.serve_args}".rstrip())
        print(
            f"{'conns':>5}  {'server':<9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>10}  ratios (matchday over the peer)"
        )
        for conns in [int(c) for c in args.conns.split(",")]:
            best: dict[str, Run] = {}
            for _ in range(args.rounds):
                for server in servers:
                    run = measure(server, work, mlflow, mlserver, conns, args.seconds, args.serve_args.split())
                    if server not in best or run.requests_per_s > best[server].requests_per_s:
                        best[server] = run
            md = best.get("matchday")
            for server in servers:
                run = best[server]
                ratios = ""
                if server == "matchday":
                    ratios = ", ".join(
                        f"x{run.requests_per_s / best[p].requests_per_s:.2f} {p}"
                        for p in servers
                        if p != "matchday" and best[p].requests_per_s
                    )
                print(
                    f"{conns:>5}  {server:<9} {run.requests_per_s:>9.0f} {run.p50_ms:>8.2f} {run.p99_ms:>8.2f} "
                    f"{run.cpu_us:>10.0f}  {ratios}"
                )
            if md is not None and md.logged is not None:
                extra = md.logged - md.answered
                print(
                    f"       matchday logged {md.logged:,} rows for {md.answered:,} answered requests"
                    f" ({'every one' if 0 <= extra <= conns else 'MISSING ROWS' if extra < 0 else 'extra rows'};"
                    f" {extra} answered after wrk stopped counting)"
                )


if __name__ == "__main__":
    main()
