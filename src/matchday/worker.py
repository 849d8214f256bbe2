"""The worker: everything that is not answering a request, in a process of its own.

The monitoring loop, the rollout controller and the webhook sender ran inside the server and took
its CPU from predictions (a monitoring tick was 16 % of a loaded server's samples). Each still runs
under its leader lock, so two workers never both summarise or both move a rollout. `matchday serve`
starts one worker beside itself (`WorkerSupervisor`: restarted if it dies, stopped with the server);
`matchday serve --no-worker` plus one `matchday worker` elsewhere is how replicas on one database run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matchday.registry import Registry
from matchday.rollout import RolloutController
from matchday.store import MONITOR_LOCK_KEY, RETRAIN_LOCK_KEY, REVIEW_LOCK_KEY, LeaderLock
from matchday.workspace import Workspace

log = logging.getLogger("matchday.worker")
PARENT_ENV = "MATCHDAY_WORKER_PARENT"  # the server process a supervised worker belongs to
RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds before each restart of a worker that keeps dying


def warm_with(registry: Registry) -> Callable[[str, list[dict[str, Any]]], float]:
    """The controller's blue-green check, done here: the version loads and scores the rows. Each server
    process loads it itself when it sees the plan's warm list."""

    def warm(ref: str, rows: list[dict[str, Any]]) -> float:
        started = time.perf_counter()
        predictor = registry.load(ref)
        if rows:
            predicted = predictor.predict(rows)
            if len(predicted) != len(rows):
                raise RuntimeError(f"{ref} answered {len(predicted)} predictions for {len(rows)} rows")
        return time.perf_counter() - started

    return warm


class Worker:
    """The background loops over one workspace; `run` until cancelled."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    async def run(self) -> None:
        ws = self.ws
        db = ws.database  # migrations, before anything else
        monitoring = ws.monitoring  # a monitor that cannot be checked stops the worker here, with every reason
        retraining = ws.retraining  # and so does a retraining policy
        controller = RolloutController(
            ws.rollouts, LeaderLock(db), warm=warm_with(ws.registry), interval=ws.settings.controller_interval
        )
        tasks = [
            asyncio.ensure_future(controller.run()),
            asyncio.ensure_future(
                monitoring.run(LeaderLock(db, MONITOR_LOCK_KEY, "monitor"), ws.settings.monitor_interval, ws.webhooks)
            ),
        ]
        tasks.append(asyncio.ensure_future(review_loop(ws, LeaderLock(db, REVIEW_LOCK_KEY, "review"))))
        if retraining.policies:
            lock = LeaderLock(db, RETRAIN_LOCK_KEY, "retrain")
            tasks.append(asyncio.ensure_future(retrain_loop(ws, lock, ws.settings.controller_interval)))
        parent = os.environ.get(PARENT_ENV)
        if parent and parent.isdigit():
            tasks.append(asyncio.ensure_future(_exit_with(int(parent))))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # the parent went away (returns), or a loop died (raises)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def review_loop(ws: Workspace, leader: LeaderLock, interval: float = 1.0) -> None:
    """The review queue's round (deadlines' fallbacks, labels to join, decisions to announce) every
    ``interval`` seconds while this worker leads it, and its monitors at the monitoring loop's interval
    (they read a day of decisions); a failed round is logged and tried again."""
    judged = float("-inf")
    try:
        while True:
            try:
                if await asyncio.to_thread(leader.acquire):
                    result = await asyncio.to_thread(ws.review.tick)
                    if result.expired or result.escalated:
                        log.info(
                            "review: %d past their deadline settled, %d escalated", result.expired, result.escalated
                        )
                    if time.monotonic() - judged >= ws.settings.monitor_interval:
                        judged = time.monotonic()
                        for change in await asyncio.to_thread(ws.review_monitors.check):
                            log.warning("review alert %s on %s: %s", change.change, change.deployment, change.message)
            except Exception:
                log.exception("review round failed; trying again in %.1fs", interval)
            await asyncio.sleep(interval)
    finally:
        await asyncio.to_thread(leader.release)


async def retrain_loop(ws: Workspace, leader: LeaderLock, interval: float = 1.0) -> None:
    """Retraining's round every ``interval`` seconds while this worker leads it: triggers, then each active
    run one step (a training step holds this loop, and only this loop, until its trainer returns)."""
    try:
        while True:
            try:
                if await asyncio.to_thread(leader.acquire):
                    ticking = asyncio.ensure_future(asyncio.to_thread(ws.retraining.tick))
                    try:
                        for run_id, outcome in await asyncio.shield(ticking):
                            if outcome not in ("waiting", "rolling_out", "backing_off"):
                                log.info("retraining run %d: %s", run_id, outcome)
                    except asyncio.CancelledError:  # shutting down: let the step in flight write its state
                        await asyncio.wait([ticking])
                        raise
            except Exception:
                log.exception("retraining round failed; trying again in %.1fs", interval)
            await asyncio.sleep(interval)
    finally:
        await asyncio.to_thread(leader.release)


async def _exit_with(pid: int) -> None:
    """Return when the server that started this worker is gone (even after a SIGKILL of it)."""
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            log.warning("the server (pid %d) is gone; the worker stops", pid)
            return
        except PermissionError:
            pass
        await asyncio.sleep(1.0)


def run_worker(ws: Workspace) -> None:
    """Run the worker until SIGTERM or Ctrl-C; each loop finishes the tick in flight first."""

    async def main() -> None:
        task = asyncio.ensure_future(Worker(ws).run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
    finally:
        ws.close()


class WorkerThread:
    """The worker in a thread of this process (the demo and in-process tests): `start`, then `stop`,
    which lets each loop finish the tick in flight."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Future[None] | None = None
        self._thread = threading.Thread(target=self._run, name="matchday-worker", daemon=True)

    def start(self) -> WorkerThread:
        self._thread.start()
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = asyncio.ensure_future(Worker(self.ws).run(), loop=self._loop)
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._task)
        self._loop.close()

    def stop(self, timeout: float = 60.0) -> None:
        if self._task is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout)


class WorkerSupervisor:
    """One `matchday worker` process beside the server: started, restarted if it dies, stopped with it."""

    def __init__(self, log_file: Path | None = None) -> None:
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="matchday-worker-supervisor", daemon=True)
        self.restarts = 0

    def start(self) -> WorkerSupervisor:
        self._spawn()
        self._thread.start()
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _spawn(self) -> None:
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        out = open(self.log_file, "ab") if self.log_file is not None else None  # noqa: SIM115 - the child's
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "matchday.cli", "worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
            )
        finally:
            if out is not None:
                out.close()
        self._started = time.monotonic()

    def _supervise(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            process = self._process
            if process is None or process.poll() is None:
                self._stopping.wait(0.5)
                continue
            failures = 1 if time.monotonic() - self._started > 60 else failures + 1  # a long life resets the backoff
            delay = RESTART_BACKOFF[min(failures, len(RESTART_BACKOFF)) - 1]
            log.error(
                "the worker (pid %d) exited with %s; restarting it in %.0fs", process.pid, process.returncode, delay
            )
            if self._stopping.wait(delay):
                return
            self.restarts += 1
            self._spawn()

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM the worker (it finishes its ticks) and wait for it; SIGKILL after ``timeout``."""
        self._stopping.set()
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
