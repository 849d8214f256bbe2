"""Leadership among server processes: one `LeaderLock` holder per database, handed over when it lets go or dies."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from matchday.store import Database, LeaderLock

HOLDER = """
import sys
from matchday.store import Database, LeaderLock
lock = LeaderLock(Database(sys.argv[1]))
print(lock.acquire(), flush=True)
sys.stdin.read()  # hold the lock until killed
"""


@pytest.fixture
def databases(database_url: str) -> Iterator[tuple[Database, Database]]:
    """Two processes' views of one database: two engines on the same URL."""
    first = Database(database_url)
    second = Database(database_url)
    yield first, second
    first.dispose()
    second.dispose()


def acquired_within(lock: LeaderLock, seconds: float) -> bool:
    """Whether ``lock`` is acquired before ``seconds`` pass (a dead holder's session ends asynchronously)."""
    deadline = time.monotonic() + seconds
    while True:
        if lock.acquire():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL session's advisory lock; SQLite's file lock has no session and no key")


def test_one_leader_at_a_time_and_release_hands_over(databases: tuple[Database, Database]) -> None:
    a, b = LeaderLock(databases[0]), LeaderLock(databases[1])
    assert not a.held
    assert a.acquire() and a.held
    assert a.acquire()  # idempotent: a leader asks every tick
    assert not b.acquire() and not b.held
    assert not b.acquire()
    a.release()
    assert not a.held
    assert b.acquire() and b.held
    assert not a.acquire()
    b.release()
    b.release()  # releasing twice is harmless
    assert a.acquire()
    a.release()


def test_asking_every_tick_does_not_stack_the_lock(databases: tuple[Database, Database]) -> None:
    """Many acquire() calls, one release(): the lock is free (a re-entrant count would keep it)."""
    a, b = LeaderLock(databases[0]), LeaderLock(databases[1])
    for _ in range(5):
        assert a.acquire()
    a.release()
    assert b.acquire()
    b.release()


def test_locks_with_different_keys_are_independent(database_url: str, databases: tuple[Database, Database]) -> None:
    _postgres_only(database_url)  # SQLite's lock file is one per database, whatever the key
    a, b = LeaderLock(databases[0], key=101), LeaderLock(databases[1], key=202)
    c = LeaderLock(databases[1], key=101)
    assert a.acquire() and b.acquire()
    assert a.acquire() and b.acquire()  # each still finds its own key held
    assert not c.acquire()
    a.release()
    b.release()


def test_a_dead_holder_process_hands_leadership_over(database_url: str, databases: tuple[Database, Database]) -> None:
    """The holder is killed without releasing: its session (PostgreSQL) or file handle (SQLite) dies with it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, database_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "True"
        mine = LeaderLock(databases[0])
        assert not mine.acquire()
    finally:
        holder.kill()
        holder.wait(10)
    assert acquired_within(mine, 10)
    mine.release()


def test_a_holder_whose_connection_is_invalidated_stops_leading(
    database_url: str, databases: tuple[Database, Database]
) -> None:
    _postgres_only(database_url)
    a, b = LeaderLock(databases[0]), LeaderLock(databases[1])
    assert a.acquire()
    assert a._connection is not None
    a._connection.invalidate()  # its session closes, and the server releases the lock
    assert acquired_within(b, 5)
    # a must not take a silently reopened session for leadership: two leaders would act at once
    assert not a.acquire() and not a.held
    b.release()
    assert a.acquire()
    a.release()


def test_a_holder_whose_session_is_terminated_stops_leading(
    database_url: str, databases: tuple[Database, Database]
) -> None:
    _postgres_only(database_url)
    a, b = LeaderLock(databases[0]), LeaderLock(databases[1])
    assert a.acquire()
    assert a._connection is not None
    pid = a._connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    a._connection.commit()
    with databases[1].engine.connect() as admin:
        assert admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        admin.commit()
    assert acquired_within(b, 5)
    assert not a.acquire() and not a.held  # the dead connection is noticed and dropped
    b.release()
    assert acquired_within(a, 5)  # and a fresh one leads once the lock is free
    a.release()


def test_sqlite_locks_a_file_beside_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'matchday.db'}"
    first, second = Database(url), Database(url)
    try:
        a, b = LeaderLock(first), LeaderLock(second)
        assert a.acquire() and (tmp_path / "matchday.db.controller-lock").exists()
        assert not b.acquire()
        a.release()
        assert b.acquire()
        b.release()
    finally:
        first.dispose()
        second.dispose()


def test_an_in_memory_database_has_one_process_and_it_leads() -> None:
    db = Database("sqlite:///:memory:")
    try:
        lock = LeaderLock(db)
        assert lock.acquire() and lock.held
        assert LeaderLock(db).acquire()  # no other process can share a memory database
        lock.release()
        assert not lock.held
    finally:
        db.dispose()
