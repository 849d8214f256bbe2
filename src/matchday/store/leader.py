"""Leadership among server processes: one of them runs the rollout controller.

PostgreSQL: a session-level advisory lock held on one dedicated connection; if that connection
dies, the lock goes with it and another process takes over. SQLite: an exclusive lock on a file
beside the database (every process on one machine); in-memory databases have one process.
"""

from __future__ import annotations

import contextlib
from typing import Any

import sqlalchemy as sa

from matchday.store.database import Database

_CONTROLLER_LOCK_KEY = 0x6D61746368 + 1
MONITOR_LOCK_KEY = 0x6D61746368 + 2  # the monitoring loop's leader, apart from the rollout controller's
REVIEW_LOCK_KEY = 0x6D61746368 + 3  # the review queue's deadlines, labels and announcements
RETRAIN_LOCK_KEY = 0x6D61746368 + 4  # retraining: triggers, and the runs' steps
_HOLDS = sa.text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() "
    "AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1"
)


class LeaderLock:
    """``acquire()`` is non-blocking and idempotent; call it every tick, it re-checks a live lock."""

    def __init__(self, db: Database, key: int = _CONTROLLER_LOCK_KEY, name: str = "controller") -> None:
        self.db = db
        self.key = key
        self.name = name  # SQLite: the lock file is ``{database}.{name}-lock``
        self._connection: sa.Connection | None = None
        self._file: Any = None

    @property
    def held(self) -> bool:
        return self._connection is not None or self._file is not None

    def acquire(self) -> bool:
        if self.db.dialect == "postgresql":
            return self._acquire_postgres()
        return self._acquire_file()

    def _acquire_postgres(self) -> bool:
        if self._connection is not None:
            # Still ours? Ask the server whether this very session holds the lock: "SELECT 1" would
            # succeed on a connection SQLAlchemy silently reopened after an invalidation, whose new
            # session holds nothing while another process leads.
            try:
                if not self._connection.invalidated and self._holds(self._connection):
                    return True
            except sa.exc.DBAPIError:
                pass
            self._drop_connection()
        try:
            conn = self.db.engine.connect()
        except sa.exc.DBAPIError:
            return False
        try:
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
            conn.commit()
        except sa.exc.DBAPIError:
            conn.close()
            return False
        if got:
            self._connection = conn
            return True
        conn.close()
        return False

    def _holds(self, conn: sa.Connection) -> bool:
        key = self.key & 0xFFFFFFFFFFFFFFFF  # a bigint key is split into two oids in pg_locks
        held = conn.execute(_HOLDS, {"hi": key >> 32, "lo": key & 0xFFFFFFFF}).scalar()
        conn.commit()
        return bool(held)

    def _acquire_file(self) -> bool:
        if self._file is not None:
            return True
        database = self.db.engine.url.database
        if not database or database == ":memory:":
            self._file = True
            return True
        import fcntl

        handle = open(f"{database}.{self.name}-lock", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.invalidate()
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None

    def release(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._connection.commit()
            self._drop_connection()
        if self._file is not None and self._file is not True:
            self._file.close()
        self._file = None
