"""Where a trainer runs: a child process of the worker (the default), or a Ray task on a cluster.

Either way the user's code never runs in the worker itself: a trainer that leaks, crashes the
interpreter or holds the GIL for an hour takes its own process down, not the monitoring loop. The
engine tells the trainer's own failure (`TrainerFailed`: no retry, the run fails) from the
machinery's (anything else: the run is retried with backoff).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from matchday.ray_cluster import RayMissing, connect
from matchday.retrain.data import ChampionArtifact, stored_parts, training_data
from matchday.retrain.errors import TrainerFailed

Heartbeat = Callable[[], bool]  # called about every second while training; False: stop (the run was cancelled)


class Cancelled(Exception):
    """The run was cancelled while its trainer ran; the trainer was stopped."""


class Engine(Protocol):
    name: str

    def train(
        self,
        trainer: str,
        snapshot: dict[str, Any],
        champion: ChampionArtifact | None,
        timeout: float,
        heartbeat: Heartbeat,
        attempt: int,
    ) -> Any: ...


def call_trainer(trainer: str, data: Any) -> Any:
    """Import ``module:function`` and call it on the data; a model it returns as None is its failure."""
    import importlib

    module, _, name = trainer.partition(":")
    function = getattr(importlib.import_module(module), name)
    model = function(data)
    if model is None:
        raise TrainerFailed(f"the trainer {trainer} returned None instead of a model")
    return model


class LocalEngine:
    """The trainer in a fresh (spawned) child process, reading the run's Parquet parts from its folder."""

    name = "local"

    def train(
        self,
        trainer: str,
        snapshot: dict[str, Any],
        champion: ChampionArtifact | None,
        timeout: float,
        heartbeat: Heartbeat,
        attempt: int,
    ) -> Any:
        folder = Path(snapshot["folder"])
        result, failure = folder / f"model-{attempt}.pkl", folder / f"failure-{attempt}.txt"
        for stale in (result, failure):
            stale.unlink(missing_ok=True)
        context = multiprocessing.get_context("spawn")
        process = context.Process(
            target=_child,
            args=(trainer, snapshot, champion, str(result), str(failure), os.getpid()),
            name=f"matchday-trainer-{snapshot.get('run')}",
            daemon=False,
        )
        process.start()
        started = time.monotonic()
        try:
            while process.is_alive():
                process.join(1.0)
                if not process.is_alive():
                    break
                if not heartbeat():
                    raise Cancelled("the run was cancelled while training")
                if time.monotonic() - started > timeout:
                    raise TrainerFailed(f"the trainer {trainer} ran past its timeout of {timeout:.0f}s and was stopped")
        finally:
            if process.is_alive():
                process.terminate()
                process.join(10)
                if process.is_alive():
                    process.kill()
                    process.join()
        if failure.exists():
            raise TrainerFailed(failure.read_text()[-4000:])
        if process.exitcode != 0 or not result.exists():
            raise RuntimeError(
                f"the trainer's process exited with {process.exitcode} without a model or an error "
                "(killed? out of memory?)"
            )
        with result.open("rb") as handle:
            return pickle.load(handle)  # written by our own child, in our own home: trusted


def _child(
    trainer: str,
    snapshot: dict[str, Any],
    champion: ChampionArtifact | None,
    result: str,
    failure: str,
    parent: int,
) -> None:
    """In the child: train, then pickle the model (or write why it failed); exit with the worker."""

    def orphaned() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(70)
            time.sleep(0.5)

    threading.Thread(target=orphaned, daemon=True).start()
    try:
        parts = stored_parts(snapshot)
        model = call_trainer(trainer, training_data(snapshot, parts, champion))
    except BaseException as exc:  # the trainer's own failure: said in full, once
        Path(failure).write_text(
            f"the trainer {trainer} failed: {type(exc).__name__}: {exc}\n"
            + "".join(traceback.format_exception(exc)[-12:])
        )
        raise SystemExit(3) from None
    tmp = Path(f"{result}.partial")
    try:
        with tmp.open("wb") as handle:
            pickle.dump(model, handle)
    except Exception as exc:
        Path(failure).write_text(
            f"the trainer {trainer} returned a {type(model).__name__} that cannot be handed back: {exc}"
        )
        raise SystemExit(3) from None
    tmp.replace(result)


class RayEngine:
    """The trainer as a Ray task: ``ray.init(address=...)`` once, the data shipped with the task."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: float = 1.0) -> None:
        self.address = address
        self.num_cpus = num_cpus

    def _ray(self) -> Any:
        try:
            return connect(self.address)
        except RayMissing as exc:  # pragma: no cover - the [ray] extra is in dev
            raise RuntimeError(str(exc)) from exc

    def train(
        self,
        trainer: str,
        snapshot: dict[str, Any],
        champion: ChampionArtifact | None,
        timeout: float,
        heartbeat: Heartbeat,
        attempt: int,
    ) -> Any:
        ray = self._ray()
        parts = stored_parts(snapshot)
        data = training_data(snapshot, parts, champion)
        task = ray.remote(num_cpus=self.num_cpus, max_retries=0)(_ray_task)
        ref = task.remote(trainer, data)
        started = time.monotonic()
        while True:
            ready, _ = ray.wait([ref], timeout=1.0)
            if ready:
                break
            if not heartbeat():
                ray.cancel(ref, force=True)
                raise Cancelled("the run was cancelled while training")
            if time.monotonic() - started > timeout:
                ray.cancel(ref, force=True)
                raise TrainerFailed(f"the trainer {trainer} ran past its timeout of {timeout:.0f}s and was stopped")
        try:
            outcome = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            raise TrainerFailed(f"the trainer {trainer} failed on Ray: {exc}") from exc
        if isinstance(outcome, tuple) and outcome and outcome[0] == "failed":
            raise TrainerFailed(str(outcome[1]))
        return outcome[1]


def _ray_task(trainer: str, data: Any) -> tuple[str, Any]:
    try:
        return ("ok", call_trainer(trainer, data))
    except Exception as exc:
        return ("failed", f"the trainer {trainer} failed: {type(exc).__name__}: {exc}")


def engine_named(name: str, address: str | None = None) -> Engine:
    if name == "ray":
        return RayEngine(address)
    return LocalEngine()
