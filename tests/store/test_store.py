"""The metadata store on both backends: migrations, concurrency, and a database that goes away."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from matchday.store import Database, ModelStore, StoreError, StoreUnavailable, head_revision


def _create(store: ModelStore, name: str = "m") -> int:
    return store.create_version(
        name, flavor="sklearn", artifact_sha256="0" * 64, artifact_size=1, signature={}, profile={"rows": 1}
    ).version


def test_migrations_apply_on_start_and_are_idempotent(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    assert db.current_revision() == head_revision() is not None
    db.upgrade()  # again: nothing to do, no error
    with db.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert {"models", "model_versions", "reference_profiles", "model_aliases", "model_alias_moves"} <= tables
    db.dispose()


def test_concurrent_starts_migrate_once(empty_database_url: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            Database(empty_database_url).dispose()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Database(empty_database_url, migrate=False).current_revision() == head_revision()


def test_concurrent_registrations_get_distinct_versions(database_url: str) -> None:
    store = ModelStore(Database(database_url))
    versions: list[int] = []
    lock = threading.Lock()

    def register() -> None:
        for _ in range(3):
            v = _create(store)
            with lock:
                versions.append(v)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(versions) == list(range(1, 13))
    store.db.dispose()


def test_timestamps_are_utc_aware(database_url: str) -> None:
    store = ModelStore(Database(database_url))
    _create(store)
    record = store.get_version("m", 1)
    assert record.created_at.utcoffset() is not None and record.created_at.utcoffset().total_seconds() == 0
    store.db.dispose()


def test_unreachable_postgres_is_a_clear_error() -> None:
    with pytest.raises(
        StoreUnavailable, match=r"cannot reach the database at postgresql\+psycopg://matchday:\*\*\*@127.0.0.1:1/x"
    ):
        Database("postgresql+psycopg://matchday:secret@127.0.0.1:1/x")


def test_unopenable_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StoreUnavailable):
        Database(f"sqlite:///{blocker}/sub/matchday.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="file is not a database"):
        Database(f"sqlite:///{garbage}")


@pytest.mark.parametrize(
    "url,match", [("nonsense", "not a database URL"), ("mysql://u@127.0.0.1/db", "unsupported database 'mysql'")]
)
def test_bad_database_urls(url: str, match: str) -> None:
    with pytest.raises(StoreUnavailable, match=match):
        Database(url)


def test_database_going_away_mid_registration_leaves_no_artifact(
    workspace, database_url, cancer, cancer_pipeline
) -> None:
    X, _ = cancer
    registry = workspace.registry
    registry.register("m", cancer_pipeline, reference=X.iloc[:100])
    existing = {p.name for p in Path(registry.artifacts.root).rglob("*") if p.is_file()}
    workspace.database.dispose()
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        shutil.rmtree(Path(url.database).parent)
    else:
        admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{url.database}" WITH (FORCE)'))
        admin.dispose()
    from sklearn.linear_model import LogisticRegression

    other = LogisticRegression(max_iter=50).fit(X.iloc[:100], cancer[1].iloc[:100])
    with pytest.raises(StoreUnavailable, match="cannot reach the database"):
        registry.register("m", other, reference=X.iloc[:100])
    root = Path(registry.artifacts.root)
    left = {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()
    assert left <= existing  # the new version's artifact was cleaned up
