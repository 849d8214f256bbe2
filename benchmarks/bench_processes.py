"""What the benchmarks share: a fresh PostgreSQL database beside an administrator's URL, and
stopping a server's whole process group."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid


def create_database(admin_url: str) -> str:
    """A fresh database (matchday_bench_<random>) beside ``admin_url``; its URL."""
    import sqlalchemy as sa

    name = f"matchday_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    import sqlalchemy as sa

    name = sa.make_url(url).database
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """The process's whole group (a server, its log process, its worker): TERM, then KILL after ``grace`` s."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
