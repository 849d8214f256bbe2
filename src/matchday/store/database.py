"""One database connection pool, managed sessions, migrations, and foreign-error translation."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import orjson
import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, CursorResult, Engine, Result, make_url
from sqlalchemy.orm import Session, sessionmaker

from matchday.store.errors import Conflict, StoreError, StoreUnavailable

_MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK_KEY = 0x6D61746368  # "match": serialises migrations across PostgreSQL processes


def redact(url: str | URL) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "<unparseable URL>"


@contextlib.contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Turn SQLAlchemy's errors into ours, once, where they enter."""
    try:
        yield
    except exc.IntegrityError as err:
        raise Conflict(f"write refused by the database: {err.orig}") from err
    except (exc.OperationalError, exc.InterfaceError) as err:
        raise StoreUnavailable(f"cannot reach the database at {redact(url)}: {_first_line(err.orig)}") from err
    except exc.DBAPIError as err:
        raise StoreError(f"database error at {redact(url)}: {_first_line(err.orig)}") from err


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched: ``Session.execute`` is typed to return a `Result`, though for
    these statements it returns a `CursorResult`, which counts them."""
    return cast(CursorResult[Any], result).rowcount


def _first_line(err: BaseException | None) -> str:
    return str(err).strip().splitlines()[0] if err and str(err).strip() else type(err).__name__


class Database:
    """An engine plus a session factory; every write goes through `session()`."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine = _create_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite: writers take the write lock when they begin (BEGIN IMMEDIATE), so two writers
        # queue on busy_timeout instead of one failing when it upgrades a stale read snapshot.
        self._write_sessions = sessionmaker(self.engine.execution_options(matchday_write=True), expire_on_commit=False)
        if migrate:
            self.upgrade()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back (nothing half-written) on error."""
        factory = self._write_sessions if write else self._sessions
        with translate_errors(self.url), factory.begin() as session:
            yield session

    def upgrade(self, revision: str = "head") -> None:
        """Apply Alembic migrations up to ``revision``; safe to call from many processes at once."""
        from alembic import command

        # Alembic's context is process-global, so one thread at a time; across processes, a lock
        # in the database (PostgreSQL) or beside the file (SQLite).
        with _migration_lock, translate_errors(self.url), self._sqlite_file_lock():
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                command.upgrade(_alembic_config(conn), revision)

    @contextlib.contextmanager
    def _sqlite_file_lock(self) -> Iterator[None]:
        database = self.engine.url.database
        if self.dialect != "sqlite" or not database or database == ":memory:":
            yield
            return
        import fcntl

        with open(f"{database}.migrate-lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with translate_errors(self.url), self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def dispose(self) -> None:
        self.engine.dispose()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(None)).get_current_head()


def _alembic_config(connection: sa.Connection | None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


_sqlite_lock = threading.Lock()
_migration_lock = threading.Lock()


def _create_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except exc.ArgumentError as err:
        raise StoreUnavailable(
            f"not a database URL: {url!r} (expected e.g. sqlite:///path.db or postgresql+psycopg://host/db)"
        ) from err
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            try:
                with _sqlite_lock:
                    Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreUnavailable(
                    f"cannot create the folder for the SQLite database {parsed.database}: {err}"
                ) from err
        engine = sa.create_engine(
            parsed, connect_args={"timeout": 30}, json_serializer=_json, json_deserializer=_json_loads
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() not in ("psycopg", "psycopg2"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(
            parsed,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 5},
            json_serializer=_json,
            json_deserializer=_json_loads,
        )
    raise StoreUnavailable(f"unsupported database {backend!r} in {redact(url)}: use sqlite or postgresql")


def _json_loads(value: Any) -> Any:
    """orjson for speed; SQLite's NUMERIC affinity hands back a JSON number as a number already."""
    if not isinstance(value, str | bytes | bytearray | memoryview):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:  # what orjson refuses and the json module reads (NaN, integers past 64 bits)
        return json.loads(bytes(value) if isinstance(value, memoryview) else value)  # json refuses a memoryview


def _json(value: Any) -> str:
    """JSON columns alike on both backends: NaN and infinities become null (PostgreSQL refuses them).
    An object with a ``to_json()`` is written as what that returns (a lazily merged sketch, say)."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=_to_json).decode()


def _to_json(value: Any) -> Any:
    to_json = getattr(value, "to_json", None)
    if to_json is None:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    return to_json()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _sqlite_begin)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL keeps the file consistent; commits skip an fsync each
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("matchday_write") else "BEGIN")
