"""A batch job with ``--deployment`` feeds that deployment's log through the real database (SQLite and
PostgreSQL): rows marked source batch, summarised by the monitoring loop into the deployment's
windows (drift on inputs and predictions included), labels joined later by the id column's value;
every row logged once, whatever its id (repeated or null), and once only when a part is redone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.batch_support import frame, register, write_parts

from matchday.batch import MANIFEST, BatchOptions, request_id
from matchday.config import Settings
from matchday.store import NotFound
from matchday.workspace import Workspace


@pytest.fixture
def ws(database_url: str, tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(Settings(home=tmp_path / "home", database_url=database_url))
    yield workspace
    workspace.close()


def test_batch_rows_are_logged_marked_summarised_and_labelled_by_entity(ws: Workspace, tmp_path: Path) -> None:
    register(ws)
    ws.deployments.deploy("nightly", "clf:1")
    rows = frame(1500, seed=11)
    source = write_parts(tmp_path / "in", [rows.iloc[:700], rows.iloc[700:]])
    options = BatchOptions(id_column="key", deployment="nightly", batch_size=500)
    result = ws.batch.score("clf:1", str(source), str(tmp_path / "out"), options)
    assert result.logged == 1500

    log = ws.prediction_log
    assert log.count("nightly") == 1500
    record = log.get(request_id(result.job_id, 42))
    assert record is not None and record.entity_id == "k42" and record.role == "served"
    assert record.routing == {
        "source": "batch",
        "job": result.job_id,
        "plan": "single",
        "arm": "primary",
        "model_ref": "clf:1",
    }
    assert record.inputs == {c: rows.loc[42, c].item() for c in ("f0", "f1", "f2", "count")}
    assert record.model == "clf" and record.version == 1 and record.probabilities is not None

    tick = ws.monitoring.tick(datetime.now(UTC) + timedelta(seconds=1))
    assert tick.rows == 1500
    windows = ws.windows.series("nightly", "5m", since=datetime.now(UTC) - timedelta(hours=1), with_summary=True)
    assert sum(w.rows for w in windows) == 1500 and {(w.model, w.version) for w in windows} == {("clf", 1)}
    metrics = windows[-1].metrics
    assert {"drift.f0", "drift.count", "prediction_drift", "class_share.1"} <= metrics.keys()
    assert metrics["rows"] == windows[-1].rows  # input drift and prediction drift watch batch rows too

    outcomes = log.apply_labels("nightly", [("entity_id", "k42", 1), ("entity_id", "k1499", 0)])
    assert [o.request_id for o in outcomes] == [request_id(result.job_id, 42), request_id(result.job_id, 1499)]
    assert log.get(request_id(result.job_id, 42)).label == 1  # type: ignore[union-attr]


def test_rows_with_a_repeated_or_null_id_are_each_logged_and_a_redone_part_logs_none_twice(
    ws: Workspace, tmp_path: Path
) -> None:
    register(ws)
    ws.deployments.deploy("nightly", "clf:1")
    rows = frame(40, seed=12)
    rows.loc[5, "key"] = "k4"  # the same id twice
    rows.loc[[10, 30], "key"] = None  # no id at all, in each part
    source = write_parts(tmp_path / "in", [rows.iloc[:20], rows.iloc[20:]])
    out = tmp_path / "out"
    options = BatchOptions(id_column="key", deployment="nightly")
    result = ws.batch.score("clf:1", str(source), str(out), options)
    assert (result.scored, result.logged) == (40, 40)
    log = ws.prediction_log
    assert log.count("nightly") == 40
    first, again = log.get(request_id(result.job_id, 4)), log.get(request_id(result.job_id, 5))
    assert first is not None and again is not None and first.entity_id == again.entity_id == "k4"
    for row in (10, 30):
        record = log.get(request_id(result.job_id, row))
        assert record is not None and record.entity_id is None
        assert record.inputs["f0"] == rows.loc[row, "f0"]

    # killed after its rows were logged, before the manifest recorded the second part: resumed, redone
    manifest = json.loads((out / MANIFEST).read_text())
    del manifest["parts"]["00001"]
    (out / MANIFEST).write_text(json.dumps(manifest))
    (out / "part-00001.parquet").unlink()
    resumed = ws.batch.score("clf:1", str(source), str(out), BatchOptions(**{**options.__dict__, "resume": True}))
    assert (resumed.rows, resumed.logged) == (20, 0) and log.count("nightly") == 40
    assert pq.read_table(out).num_rows == 40


def test_an_unknown_deployment_is_refused_before_anything_is_scored(ws: Workspace, tmp_path: Path) -> None:
    register(ws)
    source = write_parts(tmp_path / "in", [frame(20)])
    with pytest.raises(NotFound, match="nowhere"):
        ws.batch.plan("clf:1", str(source), str(tmp_path / "out"), BatchOptions(deployment="nowhere"))
    assert not (tmp_path / "out").exists()
