"""The server's log writer in a process of its own loses and duplicates no row: drained at close, flushed
on demand, its state reported back, and when the child dies a new one takes over (and what it held)."""

from __future__ import annotations

import os
import signal
import time
from functools import partial

import pytest
from test_prediction_log import ids, make_rows, spool_files, submit_from_threads, wait_until

from matchday.monitoring import LogProcess
from matchday.monitoring.log.spool import Spool
from matchday.store import PredictionLogStore
from matchday.workspace import Workspace, open_log_writer


def log_process(workspace: Workspace, **options: float) -> LogProcess:
    return LogProcess(partial(open_log_writer, workspace.settings), workspace.spool_dir, **options)


def logged(workspace: Workspace) -> list[str]:
    return PredictionLogStore(workspace.database).request_ids("fraud")


def child_pid(writer: LogProcess) -> int:
    process = writer._process  # the child as it is now: replaced when it dies
    assert process is not None and process.pid is not None
    return int(process.pid)


@pytest.mark.slow
def test_rows_from_many_threads_are_all_logged_once_and_flush_waits_for_them(workspace: Workspace) -> None:
    writer = log_process(workspace)
    writer.start()
    try:
        rows = make_rows(3000)
        submit_from_threads(writer, rows)
        assert writer.flush(30.0)
        assert sorted(logged(workspace)) == sorted(ids(rows))  # in the database when flush returns
        wait_until(lambda: writer.stats().written_rows == 3000, timeout=5)  # the child's own count, reported
        stats = writer.stats()
        assert stats.database_available and stats.queue_depth == 0 and stats.rejected_rows == 0
    finally:
        writer.close()
    assert not spool_files(workspace.spool_dir)  # everything shipped: no journal left behind


@pytest.mark.slow
def test_close_drains_every_row_still_queued(workspace: Workspace) -> None:
    writer = log_process(workspace, send_interval=0.5)  # rows still in the server's queue at close
    writer.start()
    rows = make_rows(500)
    writer.submit(rows)
    writer.close()
    assert sorted(logged(workspace)) == sorted(ids(rows))


@pytest.mark.slow
def test_a_killed_child_is_replaced_and_what_it_journaled_is_adopted(workspace: Workspace) -> None:
    writer = log_process(workspace)
    writer.start()
    try:
        first = make_rows(200)
        writer.submit(first)
        assert writer.flush(30.0)
        dead = child_pid(writer)
        os.kill(dead, signal.SIGKILL)
        time.sleep(0.2)
        later = make_rows(300, start=200)
        for i in range(0, 300, 10):  # rows keep coming while the child is gone
            writer.submit(later[i : i + 10])
        assert writer.flush(30.0)  # answered by the new child
        assert child_pid(writer) != dead
        assert sorted(logged(workspace)) == sorted(ids(first + later))
    finally:
        writer.close()


@pytest.mark.slow
def test_rows_spooled_by_a_writer_that_died_are_shipped_by_the_next_child(workspace: Workspace) -> None:
    orphan = make_rows(50)
    spool = Spool(workspace.spool_dir)
    spool.append(orphan)
    spool.close()  # released with rows in it: what a killed server's child leaves
    writer = log_process(workspace)
    writer.start()
    try:
        wait_until(lambda: len(logged(workspace)) == 50, timeout=30)
        assert sorted(logged(workspace)) == sorted(ids(orphan))
    finally:
        writer.close()


@pytest.mark.slow
def test_rows_no_child_can_take_wait_in_a_spool_file_for_the_next(workspace: Workspace) -> None:
    writer = log_process(workspace)
    writer.start()
    writer.close()  # no child any more: what comes now cannot be sent
    rows = make_rows(20)
    writer.submit(rows)
    writer.close()
    assert not logged(workspace)
    assert writer.stats().spooled_rows == 20
    files = spool_files(workspace.spool_dir)
    assert len(files) == 1
    adopter = log_process(workspace)
    adopter.start()
    try:
        wait_until(lambda: len(logged(workspace)) == 20, timeout=30)
    finally:
        adopter.close()
    assert sorted(logged(workspace)) == sorted(ids(rows))
