"""The prediction log writer must lose and duplicate no row across threads, outages, full queues and restarts."""

from __future__ import annotations

import random
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from matchday.monitoring import PredictionLogWriter
from matchday.monitoring.log.spool import Spool, read_rows
from matchday.store import Database, PredictionLogStore, StoreUnavailable

UNREACHABLE = "postgresql+psycopg://u@127.0.0.1:1/x"
T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def make_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "request_id": str(uuid.uuid4()),
            "entity_id": f"e{i}",
            "deployment": "fraud",
            "model": "fraud",
            "version": 1,
            "at": T0 + timedelta(seconds=i),
            "inputs": {"amount": i * 1.5, "merchant": "food"},
            "prediction": i % 2,
            "probabilities": [0.25, 0.75],
            "latency_seconds": 0.002,
            "routing": {"arm": "champion"},
        }
        for i in range(start, start + n)
    ]


def ids(rows: Sequence[dict[str, Any]]) -> set[str]:
    return {r["request_id"] for r in rows}


def submit_from_threads(writer: PredictionLogWriter, rows: list[dict[str, Any]], threads: int = 8) -> None:
    """Each thread submits its share in chunks of 1 to 5 rows, as concurrent requests would."""

    def work(share: list[dict[str, Any]], seed: int) -> None:
        rng = random.Random(seed)
        i = 0
        while i < len(share):
            n = rng.randint(1, 5)
            writer.submit(share[i : i + n])
            i += n

    workers = [threading.Thread(target=work, args=(rows[k::threads], k)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def spool_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("prediction-log-*.jsonl"))


class SlowStore(PredictionLogStore):
    """A real store that takes a little longer per insert, so queues actually build up."""

    def __init__(self, db: Database, delay: float = 0.005) -> None:
        super().__init__(db)
        self.delay = delay

    def insert(self, rows: Sequence[dict[str, Any]]) -> int:
        time.sleep(self.delay)
        return super().insert(rows)


class FlakyStore(PredictionLogStore):
    """A real store whose first ``failures`` inserts find the database away."""

    def __init__(self, db: Database, failures: int) -> None:
        super().__init__(db)
        self.failures = failures
        self._lock = threading.Lock()

    def insert(self, rows: Sequence[dict[str, Any]]) -> int:
        with self._lock:
            if self.failures > 0:
                self.failures -= 1
                raise StoreUnavailable("the database is away (test)")
        return super().insert(rows)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


def writer_for(store: PredictionLogStore, spool_dir: Path, **kw: Any) -> PredictionLogWriter:
    options: dict[str, Any] = {"batch_size": 50, "flush_interval": 0.01, "retry_seconds": 0.01}
    writer = PredictionLogWriter(store, spool_dir, **(options | kw))
    writer.start()
    return writer


# -- the store's idempotent insert ------------------------------------------------------------------
def test_insert_is_idempotent_on_request_id(db: Database) -> None:
    store = PredictionLogStore(db)
    rows = make_rows(5)
    assert store.insert(rows) == 5
    assert store.insert(rows) == 0
    assert store.insert(rows[:2] + make_rows(1, start=9)) == 1
    assert store.insert([]) == 0
    assert store.count() == 6


# -- the writer ---------------------------------------------------------------------------------------
def test_rows_from_many_threads_are_all_written_exactly_once(db: Database, spool_dir: Path) -> None:
    store = PredictionLogStore(db)
    writer = writer_for(store, spool_dir)
    rows = make_rows(800)
    submit_from_threads(writer, rows)
    assert writer.flush(timeout=20)

    written = store.request_ids()
    assert len(written) == len(rows) and set(written) == ids(rows)
    stats = writer.stats()
    assert (stats.queue_depth, stats.spooled_rows, stats.written_rows, stats.database_available) == (0, 0, 800, True)
    assert stats.lag_seconds == 0.0
    writer.close()
    assert spool_files(spool_dir) == []  # an empty spool file is removed


def test_logged_values_survive_the_round_trip(db: Database, spool_dir: Path) -> None:
    store = PredictionLogStore(db)
    writer = writer_for(store, spool_dir)
    (row,) = make_rows(1, start=3)
    writer.submit([row])
    assert writer.flush()
    writer.close()
    got = store.get(row["request_id"])
    assert got is not None
    assert (got.entity_id, got.deployment, got.model, got.version) == ("e3", "fraud", "fraud", 1)
    assert got.at == row["at"] and got.at.tzinfo is not None
    assert got.inputs == row["inputs"] and got.prediction == 1 and got.probabilities == [0.25, 0.75]
    assert got.routing == {"arm": "champion"} and got.label is None


def test_close_drains_the_queue(db: Database, spool_dir: Path) -> None:
    store = SlowStore(db, delay=0.01)
    writer = writer_for(store, spool_dir, batch_size=25)
    rows = make_rows(500)
    writer.submit(rows)
    assert writer.stats().queue_depth > 0  # 20 slow batches are still ahead
    writer.close()
    assert set(store.request_ids()) == ids(rows) and store.count() == 500
    assert spool_files(spool_dir) == []


def test_a_full_queue_spills_to_the_spool_and_loses_nothing(db: Database, spool_dir: Path) -> None:
    store = SlowStore(db, delay=0.005)
    writer = writer_for(store, spool_dir, max_queue=8, batch_size=4)
    spilled: list[int] = []  # rows a request thread wrote to the journal itself (the queue was full)
    append = writer.spool.append

    def counting_append(rows: Sequence[dict[str, Any]]) -> tuple[int, int]:
        if threading.current_thread().name != "matchday-log-journal":
            spilled.append(len(rows))
        return append(rows)

    writer.spool.append = counting_append  # type: ignore[method-assign]
    rows = make_rows(400)
    submit_from_threads(writer, rows[:390])
    writer.submit(rows[390:])  # ten rows at once: more than the whole queue holds
    assert spilled, "the queue never overflowed, so the test proves nothing"
    assert writer.flush(timeout=20)

    written = store.request_ids()
    assert len(written) == 400 and set(written) == ids(rows)
    assert writer.stats().spooled_rows == 0 and writer.stats().written_rows == 400
    writer.close()
    assert spool_files(spool_dir) == []


def test_an_outage_spools_and_the_same_writer_replays_when_the_database_is_back(db: Database, spool_dir: Path) -> None:
    store = FlakyStore(db, failures=3)
    writer = writer_for(store, spool_dir, batch_size=20)
    rows = make_rows(200)
    submit_from_threads(writer, rows, threads=4)
    assert writer.flush(timeout=20)
    assert store.failures == 0  # the outage really happened: three inserts were refused and spooled
    written = store.request_ids()
    assert len(written) == 200 and set(written) == ids(rows)
    stats = writer.stats()
    assert stats.database_available and stats.spooled_rows == 0 and stats.written_rows == 200
    writer.close()
    assert spool_files(spool_dir) == []


def test_one_row_the_database_refuses_does_not_stop_the_log(db: Database, spool_dir: Path) -> None:
    """PostgreSQL refuses an entity_id over String(200); SQLite stores it. Either way the log goes on."""
    store = PredictionLogStore(db)
    writer = writer_for(store, spool_dir, retry_seconds=0.05)
    (bad,) = make_rows(1)
    bad["entity_id"] = "x" * 201  # an entity key a client may send
    writer.submit([bad])
    time.sleep(0.1)
    good = make_rows(50, start=1)
    writer.submit(good)
    writer.flush(timeout=1)
    try:
        assert ids(good) <= set(store.request_ids())
        assert writer.stats().database_available
        if db.dialect == "postgresql":  # the refused row is set aside with its reason, not lost
            assert writer.stats().rejected_rows == 1
            (rejected,) = spool_dir.glob("rejected-*.jsonl")
            assert bad["request_id"] in rejected.read_text()
    finally:
        writer.close()


class GatedStore(PredictionLogStore):
    """A real store: the first insert finds the database away, later ones hang until the test opens the gate."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.entered, self.gate = threading.Event(), threading.Event()
        self.calls = 0

    def insert(self, rows: Sequence[dict[str, Any]]) -> int:
        self.calls += 1
        if self.calls == 1:
            raise StoreUnavailable("the database is away (test)")
        self.entered.set()
        assert self.gate.wait(10)
        return super().insert(rows)


def test_a_spill_does_not_wait_for_a_slow_replay(db: Database, spool_dir: Path) -> None:
    store = GatedStore(db)
    writer = writer_for(store, spool_dir, max_queue=2)
    first = make_rows(1)
    writer.submit(first)  # refused, so spooled; the writer then replays it into the hanging database
    assert store.entered.wait(5)

    burst = make_rows(3, start=1)  # more than the queue holds: goes straight to the spool
    submitter = threading.Thread(target=writer.submit, args=(burst,))
    submitter.start()
    submitter.join(timeout=1.0)
    returned = not submitter.is_alive()
    store.gate.set()
    submitter.join()
    assert writer.flush(timeout=10)
    assert set(store.request_ids()) == ids(first + burst)
    writer.close()
    assert returned, "submit() waited for the database"


def test_an_unreachable_database_spools_everything_and_the_next_writer_adopts_it(
    db: Database, spool_dir: Path, tmp_path: Path
) -> None:
    down = Database(UNREACHABLE, migrate=False)
    dead = writer_for(PredictionLogStore(down), spool_dir)
    rows = make_rows(300)
    submit_from_threads(dead, rows, threads=6)
    wait_until(lambda: dead.stats().queue_depth == 0)
    stats = dead.stats()
    assert (stats.spooled_rows, stats.written_rows, stats.database_available) == (300, 0, False)
    assert not dead.flush(timeout=0.1)
    dead.close()
    down.dispose()

    (orphan,) = spool_files(spool_dir)
    spooled = read_rows(orphan)
    assert len(spooled) == 300 and ids(spooled) == ids(rows)
    saved = tmp_path / "saved-copy.jsonl"
    shutil.copy(orphan, saved)

    store = PredictionLogStore(db)
    heir = writer_for(store, spool_dir)  # adoption happens in start(), before any new row
    written = store.request_ids()
    assert len(written) == 300 and set(written) == ids(rows)
    assert heir.stats().written_rows == 300
    assert not orphan.exists()
    first = store.get(rows[7]["request_id"])
    assert first is not None and first.at == rows[7]["at"] and first.inputs == rows[7]["inputs"]
    heir.close()

    # The same file replayed again (a crash after inserting, before unlinking) adds nothing.
    shutil.copy(saved, spool_dir / "prediction-log-1-deadbeef.jsonl")
    again = writer_for(store, spool_dir)
    assert again.stats().written_rows == 0
    assert store.count() == 300 and len(set(store.request_ids())) == 300
    assert spool_files(spool_dir) == [again.spool.path]
    again.close()
    assert spool_files(spool_dir) == []


def test_a_writer_closed_while_the_database_is_down_keeps_its_queue_in_the_spool(spool_dir: Path) -> None:
    down = Database(UNREACHABLE, migrate=False)
    writer = writer_for(PredictionLogStore(down), spool_dir, retry_seconds=5.0)
    rows = make_rows(120)
    writer.submit(rows)
    writer.close(timeout=10)
    down.dispose()
    (orphan,) = spool_files(spool_dir)
    spooled = read_rows(orphan)
    assert len(spooled) == 120 and ids(spooled) == ids(rows)


def test_an_orphan_the_database_refuses_is_kept_for_later(spool_dir: Path, db: Database) -> None:
    down = Database(UNREACHABLE, migrate=False)
    first = writer_for(PredictionLogStore(down), spool_dir)
    rows = make_rows(30)
    first.submit(rows)
    wait_until(lambda: first.stats().spooled_rows == 30)
    first.close()

    second = writer_for(PredictionLogStore(down), spool_dir)  # still down: the orphan must survive
    assert len(spool_files(spool_dir)) == 2
    assert not second.stats().database_available
    second.close()
    down.dispose()

    store = PredictionLogStore(db)
    third = writer_for(store, spool_dir)
    assert set(store.request_ids()) == ids(rows) and store.count() == 30
    third.close()
    assert spool_files(spool_dir) == []


def test_a_live_writers_spool_is_not_adopted(db: Database, spool_dir: Path) -> None:
    down = Database(UNREACHABLE, migrate=False)
    live = writer_for(PredictionLogStore(down), spool_dir)
    rows = make_rows(10)
    live.submit(rows)
    wait_until(lambda: live.stats().spooled_rows == 10)

    store = PredictionLogStore(db)
    other = writer_for(store, spool_dir)
    assert store.count() == 0  # the file is locked by a writer that is still alive
    other.close()
    live.close()
    down.dispose()


# -- the spool file itself ----------------------------------------------------------------------------
def test_spool_offsets_read_ship_and_drop(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    rows = [{"request_id": str(i), "at": T0.isoformat(), "inputs": {"x": i}} for i in range(2500)]
    first = spool.append(rows[:1000])
    second = spool.append(rows[1000:])
    assert first[0] == 0 and first[1] == second[0] and spool.end == second[1]
    assert spool.rows == 2500 and read_rows(spool.path) == rows
    assert spool.read(*second) == rows[1000:] and spool.read(*first) == rows[:1000]

    spool.shipped(1000)
    spool.drop_through(first[1])  # the shipped prefix goes; offsets stay valid
    assert spool.rows == 1500 and read_rows(spool.path) == rows[1000:]
    assert spool.read(*second) == rows[1000:]
    with pytest.raises(ValueError, match="dropped"):
        spool.read(*first)
    third = spool.append(rows[:3])
    assert third[0] == second[1] and spool.read(*third) == rows[:3]
    assert read_rows(spool.path) == rows[1000:] + rows[:3]
    spool.close()
    assert spool.path.exists()  # rows not shipped: left for adoption


def test_a_spool_whose_rows_all_shipped_is_removed_at_close(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([{"request_id": str(i)} for i in range(1500)])
    spool.shipped(1000)
    spool.close()
    assert spool.path.exists()
    again = Spool(tmp_path)
    again.append([{"request_id": "a"}])
    again.shipped(1)
    again.close()
    assert not again.path.exists()


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([{"request_id": "a"}, {"request_id": "b"}])
    spool.close()
    with open(spool.path, "ab") as handle:
        handle.write(b'{"request_id": "c"')  # a crash in the middle of a write
    assert read_rows(spool.path) == [{"request_id": "a"}, {"request_id": "b"}]


def test_orphans_are_the_unlocked_files_of_others(tmp_path: Path) -> None:
    mine, alive, dead = Spool(tmp_path), Spool(tmp_path), Spool(tmp_path)
    dead.append([{"request_id": "x"}])
    dead.close()
    found = list(mine.orphans())
    try:
        assert [path for path, _ in found] == [dead.path]
    finally:
        for _, handle in found:
            handle.close()
    alive.close()
    mine.close()


def test_a_rollouts_arms_count_online_rows_only_not_a_batch_jobs_or_a_devices(db: Database) -> None:
    """Batch and edge rows feed the deployment's windows, but a canary judged on them would count a job's
    thousand rows (each charged a share of one model call's time) as the candidate's traffic."""
    store = PredictionLogStore(db)
    online, batch, edge = make_rows(3), make_rows(5, start=10), make_rows(4, start=20)
    for row in batch:
        row["routing"] = {"source": "batch", "job": "j1", "arm": "primary"}
    for row in edge:
        row["routing"] = {"source": "edge", "device": "till-7", "arm": "primary"}
        row["error"] = "refused on the device"
    assert store.insert(online + batch + edge) == 12
    total, failed, rows = store.arm_window("fraud", "fraud", 1, T0 - timedelta(days=1))
    assert (total, failed, len(rows)) == (3, 0, 3)
    assert store.arm_calls("fraud", "fraud", 1, T0 - timedelta(days=1)) == (3, 0)
    # they are still the deployment's rows: read back with where they came from
    assert {r.routing.get("source") for r in store.recent("fraud", limit=20, errors=None)} == {None, "batch", "edge"}
