"""A server says ready (``/v2/health/ready``: 200) only once every version its deployments route to is
loaded and has scored a row, so the first request is not the one that pays for the cold start; until
then it is live but answers 503 ``{"ready": false}``. A version that cannot warm up is logged and
does not hold the others back. And a server with shadows, in two processes, stops without leaking
the shadow queues' semaphores.

The models are functions of tests/support/warm_models.py (the callable flavor), imported by the server
from the tests folder: in the server (where ``CALLS`` is set) each call is recorded and waits at a gate file,
so the test sees the server while it warms up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from support.server_process import ServerProcess, http, wait_until
from support.warm_models import CALLS, GATE

from matchday.config import Settings
from matchday.workspace import Workspace

MODELS = "support.warm_models"


def _reference() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({"amount": rng.normal(50, 20, 100), "hour": rng.integers(0, 24, 100)})


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    ws = Workspace(Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'matchday.db'}"))
    yield ws
    ws.close()


def test_ready_only_once_every_deployed_version_has_warmed_up(workspace: Workspace, tmp_path: Path) -> None:
    reference = _reference()
    workspace.registry.register("warm", f"{MODELS}:champion", reference=reference, alias="champion")
    workspace.registry.register("warm", f"{MODELS}:candidate", reference=reference)
    workspace.registry.register("wonky", f"{MODELS}:broken_here", reference=reference)
    workspace.deployments.deploy("warm", "warm@champion")
    workspace.deployments.deploy("broken", "wonky:1")  # listed first: its failure must not hold "warm" back
    workspace.rollouts.start("warm", "warm:2", {"strategy": "canary"}, "test")  # 10 % to the candidate
    calls, gate = tmp_path / "calls.txt", tmp_path / "gate"
    server = ServerProcess(  # listening at once, so that it can be seen while it warms up
        workspace.settings.home,
        workspace.settings.database_url,
        env={CALLS: str(calls), GATE: str(gate), "MATCHDAY_WARM_BEFORE_LISTEN": "0"},
    )
    starting = threading.Thread(target=server.start, daemon=True)
    starting.start()
    try:
        wait_until(
            lambda: not starting.is_alive() or (calls.exists() and calls.read_text()),
            timeout=60,
            what="the first warm-up call",
        )
        assert calls.exists(), "the server said ready before any deployed version scored a row"
        assert http.get(f"{server.url}/v2/health/live").json() == {"live": True}
        waiting = http.get(f"{server.url}/v2/health/ready")
        assert (waiting.status_code, waiting.json()) == (503, {"ready": False})
        assert calls.read_text() == "champion 1\n"  # the baseline first; the candidate waits its turn

        gate.touch()
        starting.join(60)
        ready = http.get(f"{server.url}/v2/health/ready")
        assert (ready.status_code, ready.json()) == (200, {"ready": True})
        assert calls.read_text() == "champion 1\ncandidate 1\n"  # both loaded and scored before any request
        log = server.log.read_text()
        assert "could not warm wonky:1 up: RuntimeError: this version cannot score on this server" in log
        answer = http.post(
            f"{server.url}/v1/deployments/warm/predict", json={"instances": [{"amount": 70.0, "hour": 3}]}
        )
        assert answer.status_code == 200, answer.text
    finally:
        gate.touch()
        server.stop()


def test_by_default_a_server_listens_only_once_warm(workspace: Workspace, tmp_path: Path) -> None:
    """A client (or a benchmark) that starts as soon as the port answers never meets a cold model."""
    workspace.registry.register("warm", f"{MODELS}:champion", reference=_reference(), alias="champion")
    workspace.deployments.deploy("warm", "warm@champion")
    calls, gate = tmp_path / "calls.txt", tmp_path / "gate"
    server = ServerProcess(
        workspace.settings.home, workspace.settings.database_url, env={CALLS: str(calls), GATE: str(gate)}
    )
    starting = threading.Thread(target=server.start, daemon=True)
    starting.start()
    try:
        wait_until(lambda: calls.exists() and calls.read_text(), timeout=60, what="the warm-up call")
        with pytest.raises(httpx.ConnectError):  # warming: not listening yet
            http.get(f"{server.url}/v2/health/live")
        gate.touch()
        starting.join(60)
        ready = http.get(f"{server.url}/v2/health/ready")
        assert (ready.status_code, ready.json()) == (200, {"ready": True})
    finally:
        gate.touch()
        server.stop()


def test_a_server_with_shadows_in_two_processes_stops_without_leaked_semaphores(workspace: Workspace) -> None:
    reference = _reference()
    workspace.registry.register("warm", f"{MODELS}:champion", reference=reference, alias="champion")
    workspace.registry.register("warm", f"{MODELS}:candidate", reference=reference)
    workspace.deployments.deploy("warm", "warm@champion")
    workspace.rollouts.start("warm", "warm:2", {"strategy": "shadow"}, "test")  # every process starts its shadow
    server = ServerProcess(workspace.settings.home, workspace.settings.database_url, workers=2).start()
    try:
        for _ in range(4):
            answer = http.post(
                f"{server.url}/v1/deployments/warm/predict", json={"instances": [{"amount": 70.0, "hour": 3}]}
            )
            assert answer.status_code == 200, answer.text
        assert server.proc is not None
        trackers = wait_until(
            lambda: _children(server.proc.pid, "resource_tracker"),
            timeout=30,
            what="the resource tracker the shadow processes share",
        )
    finally:
        assert server.stop() == 0
    for pid in trackers:  # it reports leaks when the last process using it is gone
        wait_until(lambda pid=pid: not Path(f"/proc/{pid}").exists(), timeout=30, what="the resource tracker to exit")
    log = server.log.read_text()
    assert "leaked semaphore" not in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def _children(parent: int, marker: str) -> list[int]:
    """Child processes of ``parent`` whose command line holds ``marker``."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            ppid = next(line.split()[1] for line in status.read_text().splitlines() if line.startswith("PPid:"))
            command = (status.parent / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, StopIteration):
            continue
        if int(ppid) == parent and marker in command:
            found.append(int(status.parent.name))
    return found
