"""The shadow process: it scores and logs mirrored rows off the server's process, drops copies when
it is behind, logs a broken shadow's failures as rows, survives its own death, and loses nothing
queued when it is closed."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pyarrow as pa
import pytest
from support.rollout_support import cancer_frame, register

from matchday.config import Settings
from matchday.serving.shadow_worker import (
    ShadowJob,
    ShadowModels,
    ShadowOutcome,
    ShadowWorker,
    score_apart,
    score_jobs,
)
from matchday.store import PredictionLogStore
from matchday.workspace import Workspace

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def unniced(workspace: Workspace) -> Settings:
    """The workspace's settings with the shadow process at normal priority, for the tests that do not
    check its niceness: niced, it waits for CPU while the other test workers keep every core busy."""
    return workspace.settings.model_copy(update={"shadow_nice": 0})


def job(ref: str, start: int, n: int, *, batch: int = 64, deployment: str = "cancer") -> ShadowJob:
    X, _ = cancer_frame()
    part = X.iloc[start : start + n]
    model, version = ref.split(":")
    return ShadowJob(
        deployment,
        model,
        int(version),
        ref,
        {"plan": "shadow", "arm": "shadow", "model_ref": ref},
        batch,
        pa.Table.from_pandas(part, preserve_index=False),
        [(f"primary-{start + i}", f"entity-{start + i}", {"row": start + i}) for i in range(n)],
    )


class Outcomes:
    def __init__(self) -> None:
        self.items: list[ShadowOutcome] = []
        self.changed = threading.Condition()

    def __call__(self, outcome: ShadowOutcome) -> None:
        with self.changed:
            self.items.append(outcome)
            self.changed.notify_all()

    def wait_rows(self, rows: int, timeout: float = 60.0) -> list[ShadowOutcome]:
        with self.changed:
            self.changed.wait_for(lambda: sum(o.rows for o in self.items) >= rows, timeout)
            return list(self.items)


def test_score_jobs_batches_one_call_and_logs_each_row_with_its_own_routing(workspace: Workspace) -> None:
    ref = register(workspace, "cancer")
    calls: list[int] = []
    predictor = workspace.registry.load(ref)
    original = predictor.predict

    def counting(table: pa.Table) -> Any:
        calls.append(table.num_rows)
        return original(table)

    predictor.predict = counting  # type: ignore[method-assign]
    first, second = job(ref, 0, 3), job(ref, 3, 2)
    second = ShadowJob(**{**second.__dict__, "routing": {"plan": "shadow", "step": 2}})
    outcome, rows = score_jobs([first, second], ShadowModels(lambda r: predictor))
    assert calls == [5]
    assert outcome == ShadowOutcome("cancer", "cancer", 1, 5, None)
    assert [r["shadow_of"] for r in rows] == [f"primary-{i}" for i in range(5)]
    assert [r["routing"].get("step") for r in rows] == [None, None, None, 2, 2]
    X, _ = cancer_frame()
    assert [r["prediction"] for r in rows] == original(pa.Table.from_pandas(X.iloc[:5], preserve_index=False)).tolist()
    assert all(r["role"] == "shadow" and r["error"] is None and len(r["probabilities"]) == 2 for r in rows)


def test_copies_the_shadow_cannot_score_fail_alone(workspace: Workspace) -> None:
    """One copy holding a value the shadow raises on: the merged call fails, its halves are scored
    again, and only that copy's rows are logged as the shadow's failure."""
    ref = register(workspace, "cancer")
    predictor = workspace.registry.load(ref)
    original = predictor.predict

    def fussy(table: pa.Table) -> Any:
        if (table.column("mean radius").to_numpy() > 1e6).any():
            raise ValueError("cannot score that")
        return original(table)

    predictor.predict = fussy  # type: ignore[method-assign]
    jobs = [job(ref, 4 * i, 4) for i in range(5)]
    bad = jobs[3]
    jobs[3] = ShadowJob(
        **{
            **bad.__dict__,
            "table": bad.table.set_column(
                bad.table.column_names.index("mean radius"), "mean radius", pa.array([1e9] * 4)
            ),
        }
    )
    results = list(score_apart(jobs, ShadowModels(lambda r: predictor)))
    failed = [o for o, _ in results if o.error is not None]
    assert [o.rows for o in failed] == [4] and "cannot score that" in (failed[0].error or "")
    assert sum(o.rows for o, _ in results) == 20 and sum(len(rows) for _, rows in results) == 20


def test_a_shadow_that_cannot_load_logs_every_row_as_failed_and_is_not_reloaded_per_job() -> None:
    loads: list[str] = []

    def broken(ref: str) -> Any:
        loads.append(ref)
        raise OSError("artifact missing")

    models = ShadowModels(broken)
    for start in (0, 4):
        outcome, rows = score_jobs([job("cancer:9", start, 4)], models)
        assert outcome.error is not None and "artifact missing" in outcome.error and outcome.rows == 4
        assert all(r["prediction"] is None and r["error"] == outcome.error for r in rows)
    assert loads == ["cancer:9"]


def test_a_shadow_that_answers_the_wrong_number_of_rows_is_an_error() -> None:
    class Short:
        signature = type("S", (), {"input_names": list(cancer_frame()[0].columns)})()
        has_proba = False

        def predict(self, table: pa.Table) -> list[int]:
            return [0]

    outcome, rows = score_jobs([job("cancer:1", 0, 3)], ShadowModels(lambda r: Short()))
    assert outcome.error is not None and "1 predictions for 3 rows" in outcome.error
    assert len(rows) == 3


@SQLITE_ONLY
def test_the_worker_process_scores_logs_and_flushes_its_queue_on_close(workspace: Workspace) -> None:
    ref = register(workspace, "cancer")
    outcomes = Outcomes()
    worker = ShadowWorker(workspace.settings, outcomes)
    try:
        assert all(worker.submit(job(ref, i * 5, 5)) for i in range(10))
        assert worker._process.pid != os.getpid()
        outcomes.wait_rows(5)
        with open(f"/proc/{worker._process.pid}/stat") as f:  # field 19: its niceness (Linux)
            assert int(f.read().rsplit(")", 1)[1].split()[16]) == workspace.settings.shadow_nice == 10
    finally:
        worker.close()
    assert sum(o.rows for o in outcomes.items) == 50 and all(o.error is None for o in outcomes.items)
    store = PredictionLogStore(workspace.database)
    assert store.count("cancer", roles=("shadow",)) == 50
    assert store.count("cancer") == 0  # nothing served
    assert not worker.submit(job(ref, 0, 1))  # closed: dropped, not raised


@SQLITE_ONLY
def test_a_full_queue_drops_copies_instead_of_waiting(workspace: Workspace) -> None:
    ref = register(workspace, "cancer")
    worker = ShadowWorker(unniced(workspace), Outcomes(), max_queued=2)
    try:
        started = time.monotonic()
        accepted = [worker.submit(job(ref, i, 1)) for i in range(200)]
        assert time.monotonic() - started < 5  # never waits on the worker (a generous bound, not a timing test)
        assert accepted.count(False) > 0
    finally:
        worker.close()


@SQLITE_ONLY
def test_a_worker_that_dies_is_replaced(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("matchday.serving.shadow_worker.RESTART_SECONDS", 0.0)
    ref = register(workspace, "cancer")
    outcomes = Outcomes()
    worker = ShadowWorker(unniced(workspace), outcomes)
    try:
        assert worker.submit(job(ref, 0, 3))
        outcomes.wait_rows(3)
        store = PredictionLogStore(workspace.database)
        deadline = time.monotonic() + 30
        while store.count("cancer", roles=("shadow",)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # written: a SIGKILL takes the rows a writer still holds in memory
        first = worker._process.pid
        os.kill(first, signal.SIGKILL)
        worker._process.join(10)
        assert worker.submit(job(ref, 3, 4))
        assert worker._process.pid != first
        assert sum(o.rows for o in outcomes.wait_rows(7)) == 7
    finally:
        worker.close()
    assert store.count("cancer", roles=("shadow",)) == 7
