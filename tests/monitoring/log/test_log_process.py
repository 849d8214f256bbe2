"""The server's log writer in a process of its own loses and duplicates no row: drained at close, flushed
on demand, its state reported back, and when the child dies a new one takes over (and what it held).

What a killed child leaves (a journal to adopt, rows to insert again, a transaction cut short) is tested
on both databases; the rest is the server's queue, the pipe and the journal, on SQLite: the writer the
child runs does the same on both databases in test_prediction_log.py.
"""

from __future__ import annotations

import os
import signal
import time
from functools import partial

import pytest
from test_prediction_log import ids, make_rows, spool_files, submit_from_threads, wait_until

from matchday.monitoring import LogProcess
from matchday.monitoring.log.spool import Spool, read_rows
from matchday.store import PredictionLogStore
from matchday.workspace import Workspace, open_log_writer

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def log_process(workspace: Workspace, *, migrate: bool = True, **options: float) -> LogProcess:
    """A log process for this workspace's database, migrated first (as the server does before it starts one)."""
    if migrate:
        _ = workspace.database
    return LogProcess(partial(open_log_writer, workspace.settings), workspace.spool_dir, **options)


def logged(workspace: Workspace) -> list[str]:
    return PredictionLogStore(workspace.database).request_ids("fraud")


def child_pid(writer: LogProcess) -> int:
    process = writer._process  # the child as it is now: replaced when it dies
    assert process is not None and process.pid is not None
    return int(process.pid)


@pytest.mark.slow
@SQLITE_ONLY
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
@SQLITE_ONLY
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
@SQLITE_ONLY
def test_rows_no_child_can_take_wait_in_a_spool_file_for_the_next(workspace: Workspace) -> None:
    writer = log_process(workspace)
    writer.start()
    writer.close()  # no child any more: what comes now cannot be sent (a request still in flight)
    rows = make_rows(20)
    writer.submit(rows)
    writer.close()
    assert not logged(workspace)
    files = spool_files(workspace.spool_dir)
    assert len(files) == 1
    adopter = log_process(workspace)
    adopter.start()
    try:
        wait_until(lambda: len(logged(workspace)) == 20, timeout=30)
    finally:
        adopter.close()
    assert sorted(logged(workspace)) == sorted(ids(rows))


@pytest.mark.slow
def test_rows_in_the_pipe_when_the_child_dies_are_not_lost(workspace: Workspace) -> None:
    """Rows the child had not journaled yet (still in the pipe, or read and not yet on disk) are kept
    by the server until the child says they are journaled, and spooled for the next child."""
    writer = log_process(workspace)
    writer.start()
    try:
        assert writer.flush(30.0)  # the child is up and reading
        stuck = child_pid(writer)
        os.kill(stuck, signal.SIGSTOP)  # it reads nothing from now on
        rows = make_rows(400)
        for i in range(0, 400, 20):
            writer.submit(rows[i : i + 20])
        wait_until(lambda: writer.stats().queue_depth == 400, timeout=10)  # sent, none journaled
        os.kill(stuck, signal.SIGKILL)
        os.kill(stuck, signal.SIGCONT)
        assert writer.flush(30.0)  # a new child ships what the dead one never journaled
        assert child_pid(writer) != stuck
        assert sorted(logged(workspace)) == sorted(ids(rows))
    finally:
        writer.close()


@pytest.mark.slow
def test_a_child_starts_and_journals_while_the_database_is_away(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from test_prediction_log import UNREACHABLE

    from matchday.config import Settings

    away = Workspace(Settings(home=tmp_path / "home", database_url=UNREACHABLE))
    writer = log_process(away, migrate=False)
    writer.start()
    try:
        first = child_pid(writer)
        writer.submit(make_rows(30))
        wait_until(lambda: not writer.stats().database_available, timeout=30)
        assert writer.stats().spooled_rows == 30  # journaled in the child, waiting for the database
        assert not writer.flush(1.0)  # not in the database
        assert child_pid(writer) == first  # no crash, no restart loop
    finally:
        writer.close(timeout=5)
    assert sum(len(read_rows(f)) for f in spool_files(away.spool_dir)) == 30  # left for the next start


@pytest.mark.slow
@SQLITE_ONLY
def test_rows_spooled_in_the_server_are_in_the_database_when_flush_returns(workspace: Workspace) -> None:
    writer = log_process(workspace, max_queue=10)  # a small queue: most of these spill in the server
    writer.start()
    try:
        rows = make_rows(200)
        for i in range(0, 200, 25):
            writer.submit(rows[i : i + 25])
        assert writer.flush(30.0)
        assert sorted(logged(workspace)) == sorted(ids(rows))
    finally:
        writer.close()


@pytest.mark.slow
@SQLITE_ONLY
def test_a_row_that_cannot_be_written_is_set_aside_and_the_rest_logged(workspace: Workspace) -> None:
    rows = make_rows(5)
    bad = make_rows(1, start=5)[0]
    bad["inputs"]["self"] = bad  # a row that holds itself: no JSON for it
    writer = log_process(workspace)
    writer.start()
    try:
        writer.submit([*rows[:2], bad, *rows[2:]])
        assert writer.flush(30.0)
        assert sorted(logged(workspace)) == sorted(ids(rows))
    finally:
        writer.close()
    rejected = list(workspace.spool_dir.glob("rejected-server-*.jsonl"))
    assert len(rejected) == 1 and bad["request_id"] in rejected[0].read_text()


@pytest.mark.slow
@SQLITE_ONLY
def test_a_lone_row_leaves_the_server_within_the_send_interval(workspace: Workspace) -> None:
    """A row arriving alone is sent once it has waited ``send_interval``, not when something else
    happens to wake the sender (its kill -9 bound is that interval)."""
    writer = log_process(workspace, send_interval=0.01)
    writer.start()
    try:
        assert writer.flush(30.0)
        waits = []
        for row in make_rows(11):
            started = time.monotonic()
            writer.submit([row])
            wait_until(lambda: writer._queued_rows == 0, timeout=5)  # handed to the pipe
            waits.append(time.monotonic() - started)
            time.sleep(0.05)
        assert sorted(waits)[5] < 0.08, waits  # the median: 10 ms and a thread switch, even on a busy machine
    finally:
        writer.close()


def test_the_child_drains_the_pipe_while_a_slow_fsync_holds_its_journal() -> None:
    """A row left in the pipe (or in the server, the pipe full) dies with a killed server: the child reads
    the pipe whatever its disk is doing, and journals what came meanwhile in one write, in order."""
    import multiprocessing
    import queue
    import threading

    from matchday.monitoring.log.process import _drain, _in_groups

    receive, send = multiprocessing.Pipe(duplex=False)
    arrived: queue.Queue[tuple[bytes, bytes] | None] = queue.Queue()
    reader = threading.Thread(target=_drain, args=(receive, arrived), daemon=True)
    reader.start()
    payload = b"x" * 2000  # 2,000 messages of 2 kB: thirty times what a pipe holds
    started = time.monotonic()
    for i in range(2000):
        send.send_bytes(b"R" + i.to_bytes(8, "little") + payload)
    send.send_bytes(b"F" + b"mark")
    send.send_bytes(b"R" + (2000).to_bytes(8, "little"))
    send.close()
    assert time.monotonic() - started < 5  # nobody journaled meanwhile: the sender never waited on it
    reader.join(5)
    groups = list(_in_groups(arrived))
    assert [(g[0][0], len(g)) for g in groups] == [(b"R", 2000), (b"F", 1), (b"R", 1)]
    assert [int.from_bytes(m[1][:8], "little") for m in groups[0]] == list(range(2000))
