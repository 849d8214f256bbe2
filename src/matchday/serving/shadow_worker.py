"""Shadows are scored and logged in a separate process at a low CPU priority, so a slow or
CPU-hungry shadow takes neither the server's GIL nor its cores from the answers clients wait for.

The server puts each mirrored request on a bounded queue and moves on; when the queue is full the
copy is dropped and counted (a shadow is best effort, never back-pressure). The worker batches what
is queued, scores it on the candidate, and writes the rows to the prediction log itself.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from matchday.config import Settings

log = logging.getLogger("matchday.serving.shadow")
MAX_QUEUED = 64  # mirrored requests waiting for the worker; past this, copies are dropped
RESTART_SECONDS = 10.0  # a worker that died is not restarted sooner than this
FEEDER_JOIN_SECONDS = 5.0  # at close, how long the jobs queue may take to hand over its last bytes
LOAD_RETRY_SECONDS = 10.0  # a shadow version that failed to load is not tried again sooner
IDLE_UNLOAD_SECONDS = 300.0  # a shadow model no job asked for in this long is unloaded


@dataclass(frozen=True)
class ShadowJob:
    """One mirrored request: the validated rows, and what their log rows need."""

    deployment: str
    model: str
    version: int
    ref: str
    routing: dict[str, Any]
    max_batch_size: int
    table: pa.Table
    rows: list[tuple[str, str | None, dict[str, Any]]]  # (the primary's request id, entity id, inputs)


@dataclass(frozen=True)
class ShadowOutcome:
    """What the worker did with some rows, sent back for the server's Prometheus counters."""

    deployment: str
    model: str
    version: int
    rows: int
    error: str | None


class ShadowWorker:
    """The server's handle on its shadow process: started on the first job, restarted if it dies."""

    def __init__(
        self, settings: Settings, on_outcome: Callable[[ShadowOutcome], None], *, max_queued: int = MAX_QUEUED
    ) -> None:
        self.settings = settings
        self.on_outcome = on_outcome
        self.max_queued = max_queued
        self._context = multiprocessing.get_context("spawn")  # fork would copy the event loop's threads
        self._lock = threading.Lock()
        self._process: Any = None
        self._jobs: Any = None
        self._reader: threading.Thread | None = None
        self._next_start = 0.0
        self._closed = False
        self._prepared: set[str] = set()  # versions this worker was asked to load ahead of traffic

    def submit(self, job: ShadowJob) -> bool:
        """Queue ``job`` without waiting; False when it was dropped (worker behind, dead or closed)."""
        if self._closed or not self._ensure_running():
            return False
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            return False
        return True

    def prepare(self, ref: str) -> None:
        """Start the worker and load ``ref`` before the first copy arrives (once per worker and version)."""
        if self._closed or ref in self._prepared or not self._ensure_running():
            return
        try:
            self._jobs.put_nowait(ref)
        except queue.Full:
            return
        self._prepared.add(ref)

    def _ensure_running(self) -> bool:
        process = self._process
        if process is not None and process.is_alive():
            return True
        with self._lock:
            if self._process is not None and self._process.is_alive():
                return True
            if time.monotonic() < self._next_start or self._closed:
                return False
            if self._process is not None:
                log.warning(
                    "shadow worker (pid %s) exited with code %s; starting another",
                    self._process.pid,
                    self._process.exitcode,
                )
                self._stop_reader()
            self._next_start = time.monotonic() + RESTART_SECONDS
            self._prepared = set()
            self._jobs = self._context.Queue(self.max_queued)
            # Outcomes come back on a plain pipe: no semaphores, no lock a killed worker could leave held,
            # and its end (the worker gone, however it went) reaches the reader as end-of-file.
            outcomes, sent = self._context.Pipe(duplex=False)
            self._process = self._context.Process(
                target=run_worker, args=(self.settings, self._jobs, sent), name="matchday-shadow", daemon=True
            )
            self._process.start()
            sent.close()  # the worker holds the only writing end now
            self._reader = threading.Thread(
                target=self._read_outcomes, args=(outcomes,), name="matchday-shadow-outcomes", daemon=True
            )
            self._reader.start()
            return True

    def _read_outcomes(self, outcomes: Any) -> None:
        """Count what the worker reports until it closes its end of the pipe (or dies)."""
        with outcomes:
            while True:
                try:
                    outcome = outcomes.recv()
                except (EOFError, OSError):
                    return
                try:
                    self.on_outcome(outcome)
                except Exception:  # a counter must never stop the reader
                    log.exception("shadow outcome not counted")

    def _stop_reader(self) -> None:
        """Wait for the reader, which ends on the worker's end of file (call once the worker is gone)."""
        if self._reader is not None and self._reader.is_alive():
            self._reader.join(5.0)
        self._reader = None

    def close(self, timeout: float = 30.0) -> None:
        """Let the worker score and log what is queued (within ``timeout``), then stop it."""
        with self._lock:
            self._closed = True
            process = self._process
            if process is None:
                return
            if process.is_alive():
                try:
                    self._jobs.put(None, timeout=timeout)
                except queue.Full:
                    pass
                process.join(timeout)
                if process.is_alive():
                    log.warning("shadow worker did not finish its queue in %.0f s; stopped", timeout)
                    process.terminate()
                    process.join(5.0)
            self._stop_reader()
            self._release_jobs()

    def _release_jobs(self) -> None:
        """Let go of the jobs queue now, so that its semaphores are unlinked now, not at interpreter exit.

        A queue holds three named semaphores, which multiprocessing unlinks when the queue is collected
        or in its exit hooks. uvicorn's processes end by re-raising the SIGTERM they stopped on, which
        skips those hooks, and the resource tracker then warned of "6 leaked semaphore objects" per
        server process. The queue's feeder thread holds two of them until it has written the last
        bytes, and the process object holds the queue as an argument, so both go too.
        `Queue.join_thread` has no timeout, and a feeder whose pipe no live process reads may never
        end (a killed worker, a full pipe): it is waited for in a thread of its own, for a while.
        """
        jobs = self._jobs
        jobs.close()
        joiner = threading.Thread(target=jobs.join_thread, name="matchday-shadow-feeder", daemon=True)
        joiner.start()
        joiner.join(FEEDER_JOIN_SECONDS)
        if joiner.is_alive():
            log.warning(
                "the shadow jobs queue did not drain in %.0f s: its semaphores are left to the resource tracker",
                FEEDER_JOIN_SECONDS,
            )
        self._jobs = self._process = None


# -- the worker process -------------------------------------------------------------------------
def run_worker(settings: Settings, jobs: Any, outcomes: Any) -> None:
    """The shadow process: low priority, its own database connection and prediction-log writer.

    Ctrl-C in a terminal reaches every process of the group: the server stops this one itself (after
    the queued copies), so SIGINT is ignored here rather than ending it with a traceback mid-job."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(settings.shadow_nice)
    except OSError:  # not allowed here: still out of the server's GIL
        pass
    from matchday.workspace import Workspace

    workspace = Workspace(settings)
    writer = workspace.log_writer()
    writer.start()
    models = ShadowModels(workspace.registry.load)
    try:
        while True:
            try:
                first = jobs.get(timeout=60.0)
            except queue.Empty:
                models.unload_idle()
                continue
            if first is None:
                break
            if isinstance(first, str):  # a version to load ahead of its first copy
                _preload(models, first)
                continue
            batch, stop = _drain(jobs, first, models)
            for group in _groups(batch):
                for outcome, rows in score_apart(group, models):
                    writer.submit(rows)
                    if not _report(outcomes, outcome):
                        return  # the server is gone: what was scored is still written (finally)
            if stop:
                break
    finally:
        writer.close()
        workspace.close()
        outcomes.close()  # the server's reader sees the end of the pipe


def _report(outcomes: Any, outcome: ShadowOutcome) -> bool:
    """Send ``outcome`` to the server's counters; False when the server has closed its end (it is gone)."""
    try:
        outcomes.send(outcome)
    except (BrokenPipeError, ConnectionResetError):
        log.warning("the server is gone; the shadow worker stops")
        return False
    return True


def _preload(models: ShadowModels, ref: str) -> None:
    try:
        models.get(ref)
    except Exception as exc:  # the copies that follow are logged as failed rows, with this reason
        log.warning("%s", exc)


def _drain(jobs: Any, first: ShadowJob, models: ShadowModels) -> tuple[list[ShadowJob], bool]:
    """``first`` and whatever else is queued, up to the deployment's batch size in rows."""
    batch = [first]
    rows = len(first.rows)
    while rows < first.max_batch_size:
        try:
            job = jobs.get_nowait()
        except queue.Empty:
            break
        if job is None:
            return batch, True
        if isinstance(job, str):
            _preload(models, job)
            continue
        batch.append(job)
        rows += len(job.rows)
    return batch, False


def _groups(batch: list[ShadowJob]) -> list[list[ShadowJob]]:
    groups: dict[tuple[str, str], list[ShadowJob]] = {}
    for job in batch:
        groups.setdefault((job.deployment, job.ref), []).append(job)
    return list(groups.values())


class ShadowModels:
    """The worker's loaded shadow versions; a version that fails to load is not retried per job."""

    def __init__(self, load: Callable[[str], Any]) -> None:
        self.load = load
        self._models: dict[str, tuple[Any, float]] = {}
        self._failed: dict[str, tuple[float, str]] = {}

    def get(self, ref: str) -> Any:
        now = time.monotonic()
        if ref in self._models:
            model = self._models[ref][0]
        else:
            failed = self._failed.get(ref)
            if failed is not None and failed[0] > now:
                raise RuntimeError(failed[1])
            try:
                model = self.load(ref)
            except Exception as exc:
                message = f"{ref} cannot be loaded for the shadow: {type(exc).__name__}: {exc}"
                self._failed[ref] = (now + LOAD_RETRY_SECONDS, message)
                raise RuntimeError(message) from exc
            self._failed.pop(ref, None)
        self._models[ref] = (model, now)
        return model

    def unload_idle(self) -> None:
        cutoff = time.monotonic() - IDLE_UNLOAD_SECONDS
        for ref in [r for r, (_, used) in self._models.items() if used < cutoff]:
            del self._models[ref]


def score_apart(jobs: list[ShadowJob], models: ShadowModels) -> Iterator[tuple[ShadowOutcome, list[dict[str, Any]]]]:
    """`score_jobs`, and when the one call fails, its halves again, down to the copies it fails on: one
    request the shadow cannot score (a far-out-of-range value) does not fail the copies beside it."""
    outcome, rows = score_jobs(jobs, models)
    if outcome.error is None or len(jobs) == 1:
        yield outcome, rows
        return
    middle = len(jobs) // 2
    yield from score_apart(jobs[:middle], models)
    yield from score_apart(jobs[middle:], models)


def score_jobs(jobs: list[ShadowJob], models: ShadowModels) -> tuple[ShadowOutcome, list[dict[str, Any]]]:
    """Score one deployment's jobs on its shadow version in one call; log rows for every input row.

    A failure (to load, to score) is logged on every row, as for a served version. Latency is the
    model call's, the time the shadow would have added had it answered.
    """
    from matchday.monitoring import json_safe

    job = jobs[0]
    started = time.perf_counter()
    error: str | None = None
    values: list[Any] = []
    probas: list[Any] = []
    n = sum(len(j.rows) for j in jobs)
    try:
        predictor = models.get(job.ref)
        names = predictor.signature.input_names
        table = pa.concat_tables([j.table.select(names) for j in jobs], promote_options="default")
        with np.errstate(all="ignore"):  # the model's own overflow warnings are not ours to print
            predictions = np.asarray(predictor.predict(table))
            proba = predictor.predict_proba(table) if predictor.has_proba else None
        if len(predictions) != n:
            raise ValueError(f"{job.ref} answered {len(predictions)} predictions for {n} rows")
        values = json_safe(predictions.tolist())
        probas = json_safe(np.asarray(proba).tolist()) if proba is not None else [None] * n
    except Exception as exc:  # a broken shadow is logged and counted; no client ever sees it
        error = f"{type(exc).__name__}: {exc}"[:1000]
        values, probas = [None] * n, [None] * n
    elapsed = time.perf_counter() - started
    now = datetime.now(UTC)
    inputs = [(j, row) for j in jobs for row in j.rows]
    rows = [
        {
            "request_id": str(uuid.uuid4()),
            "entity_id": entity,
            "deployment": j.deployment,
            "model": j.model,
            "version": j.version,
            "at": now,
            "inputs": record,
            "prediction": value,
            "probabilities": p,
            "latency_seconds": elapsed,
            "routing": j.routing,
            "error": error,
            "role": "shadow",
            "shadow_of": primary_id,
        }
        for (j, (primary_id, entity, record)), value, p in zip(inputs, values, probas, strict=False)
    ]
    return ShadowOutcome(job.deployment, job.model, job.version, n, error), rows
