"""The worker process (issue 14): monitoring, the rollout controller and webhooks run beside the server,
not in it; `matchday serve` supervises one, `--no-worker` leaves it to a `matchday worker` elsewhere."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from support.rollout_support import cancer_frame, deployed
from support.server_process import MATCHDAY, ServerProcess, http, wait_until

from matchday.workspace import Workspace

FAST = {"MATCHDAY_MONITOR_INTERVAL": "0.3", "MATCHDAY_CONTROLLER_INTERVAL": "0.2"}


def rows(n: int) -> list[dict[str, Any]]:
    X, _ = cancer_frame()
    return X.head(n).to_dict(orient="records")  # type: ignore[return-value]


def summarised(url: str) -> int:
    answer = http.get(f"{url}/v1/deployments/cancer/metrics", params={"window": "5m"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return sum(w["rows"] for w in answer.json()["windows"])


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def worker_of(server: ServerProcess) -> int:
    assert server.proc is not None
    return wait_until(
        lambda: next(
            (
                p
                for p in children(server.proc.pid)  # type: ignore[union-attr]
                if "worker" in Path(f"/proc/{p}/cmdline").read_text()
            ),
            None,
        ),
        30,
        "a worker",
    )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_without_a_worker_nothing_is_summarised_and_a_separate_worker_does_it(
    workspace: Workspace, database_url: str
) -> None:
    """On PostgreSQL only: a worker elsewhere shares the server's database, which SQLite's one file cannot
    be beyond this machine; a worker's windows in one SQLite file beside the server's log process are the
    monitoring end-to-end test's (tests/monitoring/windows/test_monitoring_e2e.py, on SQLite)."""
    deployed(workspace, versions=1)
    env = {**os.environ, "MATCHDAY_HOME": str(workspace.settings.home), "MATCHDAY_DATABASE_URL": database_url, **FAST}
    with ServerProcess(workspace.settings.home, database_url, env=FAST) as server:  # no worker
        assert (
            http.post(
                f"{server.url}/v1/deployments/cancer/predict", json={"instances": rows(20)}, timeout=30
            ).status_code
            == 200
        )
        time.sleep(2.0)  # ticks would have run by now if the server ran the loop itself
        assert summarised(server.url) == 0
        worker = subprocess.Popen(
            [MATCHDAY, "worker"],
            env=env,
            cwd=workspace.settings.home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(lambda: summarised(server.url) == 20, 60, "the separate worker's windows")
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(60) == 0  # a graceful stop


@pytest.fixture
def sqlite_workspace(tmp_path: Path) -> Any:
    """Supervision is about processes, not the database: these run on SQLite only."""
    from matchday.config import Settings

    ws = Workspace(Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'matchday.db'}"))
    yield ws
    ws.close()


@pytest.mark.slow
def test_serve_restarts_a_worker_that_dies_and_stops_it_with_the_server(sqlite_workspace: Workspace) -> None:
    workspace = sqlite_workspace
    deployed(workspace, versions=1)
    server = ServerProcess(workspace.settings.home, workspace.settings.database_url, env=FAST, worker=True).start()
    try:
        first = worker_of(server)
        os.kill(first, signal.SIGKILL)
        second = wait_until(lambda: (w := worker_of(server)) != first and w, 30, "a new worker")
        assert (
            http.post(
                f"{server.url}/v1/deployments/cancer/predict", json={"instances": rows(7)}, timeout=30
            ).status_code
            == 200
        )
        wait_until(lambda: summarised(server.url) == 7, 60, "the new worker's windows")
    finally:
        server.stop()
    wait_until(lambda: not alive(second), 30, "the worker to stop with the server")


@pytest.mark.slow
def test_a_worker_whose_server_was_killed_stops(sqlite_workspace: Workspace) -> None:
    workspace = sqlite_workspace
    deployed(workspace, versions=1)
    server = ServerProcess(workspace.settings.home, workspace.settings.database_url, env=FAST, worker=True).start()
    worker = worker_of(server)
    server.stop(graceful=False)
    wait_until(lambda: not alive(worker), 30, "the orphaned worker to stop")
