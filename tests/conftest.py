"""Shared fixtures: every store and registry test runs on SQLite and on PostgreSQL.

PostgreSQL comes from MATCHDAY_TEST_POSTGRES_URL (set by `make test` and CI). When it is set
and the server cannot be reached the tests fail; they never skip silently.
"""

from __future__ import annotations

import os
import shutil

# One OpenMP (and OpenBLAS) thread per process, set before NumPy or scikit-learn load them: the suite
# runs three xdist workers, their servers and CLI processes on two cores, and OpenMP threads that
# outnumber the cores spin-wait for each other (a 5-fold HistGradientBoosting fit took 14.7 s, 2.5 s
# with one thread). Subprocesses inherit it through os.environ.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import contextlib  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from matchday.config import Settings  # noqa: E402
from matchday.workspace import Workspace  # noqa: E402

POSTGRES_ENV = "MATCHDAY_TEST_POSTGRES_URL"


def _postgres_admin_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database for one test, on each backend, at the newest migration."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for one test, on each backend: for the tests of the migrations themselves."""
    with fresh_database(request.param, tmp_path, migrated=False) as url:
        yield url


@contextlib.contextmanager
def fresh_database(backend: str, folder: Path, *, migrated: bool = True) -> Iterator[str]:
    """The URL of a new database (a file in ``folder`` for SQLite), dropped afterwards: a copy of one this
    process migrated once (applying the migrations took 0.7 s a PostgreSQL database, for every one of
    some 300 tests), or empty if not ``migrated``."""
    if backend == "sqlite":
        url = f"sqlite:///{folder / 'matchday.db'}"
        if migrated:
            _copy_sqlite(_migrated_template("sqlite"), folder / "matchday.db")
        yield url
        return
    admin_url = _postgres_admin_url()
    if admin_url is None:
        pytest.skip(f"{POSTGRES_ENV} is not set; `make test` sets it and runs these")
    name = f"matchday_test_{uuid.uuid4().hex[:12]}"
    template = f' TEMPLATE "{_migrated_template("postgresql")}"' if migrated else ""
    admin = _admin_engine(admin_url)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"{template}'))
    try:
        yield _database_at(admin_url, name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


_templates: dict[str, str] = {}  # backend -> this process's migrated database (a PostgreSQL name, a file)


def _migrated_template(backend: str) -> str:
    """A database of ``backend`` at the newest migration, made once per test process for its tests to copy."""
    if backend not in _templates:
        from matchday.store import Database

        if backend == "sqlite":
            url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='matchday-template-')) / 'template.db'}"
            name = sa.make_url(url).database or ""
        else:
            admin_url = _postgres_admin_url() or ""
            name = f"matchday_template_{uuid.uuid4().hex[:12]}"
            admin = _admin_engine(admin_url)
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            url = _database_at(admin_url, name)
        Database(url).dispose()  # migrated, and no connection left open: a template must have none
        _templates[backend] = name
    return _templates[backend]


def _copy_sqlite(template: str, target: Path) -> None:
    import sqlite3

    with contextlib.closing(sqlite3.connect(template)) as source, contextlib.closing(sqlite3.connect(target)) as copy:
        source.backup(copy)


@pytest.fixture(scope="session", autouse=True)
def _drop_migrated_templates() -> Iterator[None]:
    yield
    name = _templates.pop("postgresql", None)
    admin_url = _postgres_admin_url()
    if name and admin_url:
        admin = _admin_engine(admin_url)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    sqlite = _templates.pop("sqlite", None)
    if sqlite:
        shutil.rmtree(Path(sqlite).parent, ignore_errors=True)


def _admin_engine(admin_url: str) -> sa.Engine:
    """An engine on the server's maintenance database; the test fails if the server cannot be reached."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        admin.connect().close()
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {admin_url} is unreachable, and {POSTGRES_ENV} says it must be there: {exc}")
    return admin


def _database_at(admin_url: str, name: str) -> str:
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def new_database() -> Callable[[str, Path], contextlib.AbstractContextManager[str]]:
    """`fresh_database`, for fixtures of a wider scope than one test."""
    return fresh_database


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One database for a whole module, on each backend (for a server or data that takes seconds to make)."""
    with fresh_database(request.param, tmp_path_factory.mktemp("module-db")) as url:
        yield url


@pytest.fixture
def workspace(database_url: str, tmp_path: Path) -> Iterator[Workspace]:
    ws = Workspace(Settings(home=tmp_path / "home", database_url=database_url))
    yield ws
    ws.close()


@pytest.fixture
def registry(workspace: Workspace):  # type: ignore[no-untyped-def]
    return workspace.registry


@pytest.fixture(scope="session")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="session")
def mixed_frame() -> pd.DataFrame:
    """Numeric, integer, categorical and boolean columns with a few missing values, and a label."""
    rng = np.random.default_rng(7)
    n = 600
    frame = pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, n),
            "hour": rng.integers(0, 24, n),
            "merchant": rng.choice(["food", "fuel", "travel"], n),
            "online": rng.random(n) < 0.3,
        }
    )
    frame.loc[::50, "amount"] = np.nan
    frame["label"] = ((frame["amount"].fillna(0) > 30) | frame["online"]).astype(int)
    return frame


@pytest.fixture(scope="session")
def cancer_pipeline(cancer):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = cancer
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`make test` runs `pytest -n 4`, which distributes with xdist's `load` scheduler: it queues
    tests on each worker and never takes them back, so one worker ran the end-to-end rollout tests
    one after another for 130 s while another sat idle for the last 108 s of the run. With
    `worksteal`, an idle worker takes half of the tests still queued on the busiest one. An explicit
    `--dist` other than `load` is left alone."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import WorkStealingScheduling

    return WorkStealingScheduling(config, log)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium driven by Playwright's driver (no browser download), one per test module."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not on PATH: `make install` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, headless=True, args=flags)
        yield launched
        launched.close()
