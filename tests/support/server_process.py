"""Start and stop a real `matchday serve` on 127.0.0.1 for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

MATCHDAY = str(Path(sys.executable).parent / "matchday")
# One client for the tests' many small requests (thread-safe, httpx's default 5 s timeout): httpx.get()
# and httpx.post() build a client, and with it an SSL context, on every call: ~25 ms of CPU each,
# which the load tests' hundreds of requests paid per request.
http = httpx.Client()


def wait_until(check: Any, timeout: float = 60.0, what: str = "the condition") -> Any:
    """Poll ``check`` until it returns something truthy (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(
        self,
        home: Path,
        database_url: str,
        port: int | None = None,
        workers: int = 1,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        worker: bool = False,
    ) -> None:
        """``worker``: start `matchday serve`'s worker (monitoring, rollouts, webhooks) too. Off unless a
        test needs those: each worker is one more process importing everything on two cores."""
        self.home, self.database_url = home, database_url
        self.extra_env = env or {}
        self.args = (args or []) + ([] if worker else ["--no-worker"])
        self.port = port or free_port()
        self.workers = workers
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / f"server-{self.port}.log"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        env = {
            **os.environ,
            "MATCHDAY_HOME": str(self.home),
            "MATCHDAY_DATABASE_URL": self.database_url,
            "PYTHONPATH": str(Path(__file__).parents[1]),
            **self.extra_env,
        }
        self.proc = subprocess.Popen(
            [
                MATCHDAY,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--log-level",
                "warning",
                *self.args,
            ],
            env=env,
            cwd=self.home,
            stdout=open(self.log, "ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if http.get(f"{self.url}/v2/health/ready", timeout=1).json().get("ready"):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not become ready:\n{self.log.read_text()[-3000:]}")

    def stop(self, graceful: bool = True, timeout: float = 60.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
