"""`matchday log export`: predictions served by a real server, labelled through the API, exported to
Parquet with one row per prediction, an input per column, a probability per class and the label.

One server per database for the module; each test exports a deployment of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from support.cli_in_process import run_in_process
from support.server_process import ServerProcess, http, wait_until

import matchday.workspace
from matchday.config import Settings
from matchday.workspace import Workspace


def _forget_default_workspace() -> None:
    with matchday.workspace._lock:
        if matchday.workspace._default is not None:
            matchday.workspace._default.close()
            matchday.workspace._default = None


def export(workspace: Workspace, *args: str) -> Any:
    env = {
        **os.environ,
        "MATCHDAY_HOME": str(workspace.settings.home),
        "MATCHDAY_DATABASE_URL": workspace.settings.database_url,
        "COLUMNS": "200",
    }
    return run_in_process(["log", "export", *args], env, after=_forget_default_workspace)


@pytest.fixture(scope="module")
def shared(store_url: str, tmp_path_factory: pytest.TempPathFactory, cancer, cancer_pipeline) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    X, y = cancer
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("export-home"), database_url=store_url))
    ws.registry.register("cancer", cancer_pipeline, reference=X.assign(target=y), target="target", alias="champion")
    ws.deployments.deploy("cancer", "cancer@champion")  # loaded before the server is ready; the tests' own share it
    try:
        with ServerProcess(ws.settings.home, store_url) as server:
            yield server, X, ws
    finally:
        ws.close()


@pytest.fixture
def workspace(shared: Any) -> Workspace:
    return shared[2]  # type: ignore[no-any-return]


def served_as(shared: Any, deployment: str) -> Any:
    """The shared server, with cancer@champion deployed as ``deployment`` (a test's own rows to export)."""
    server, X, ws = shared
    ws.deployments.deploy(deployment, "cancer@champion")
    return server, X


def test_export_writes_a_row_per_prediction_with_inputs_probabilities_and_labels(shared, workspace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server, X = served_as(shared, "labelled")
    rows = X.iloc[:30]
    answer = http.post(
        f"{server.url}/v1/deployments/labelled/predict",
        json={"instances": rows.to_dict(orient="records"), "ids": [f"p{i}" for i in range(30)]},
    ).json()
    predictions = answer["predictions"]
    labels = [{"request_id": p["request_id"], "label": int(p["prediction"])} for p in predictions[:10]]
    assert http.post(f"{server.url}/v1/deployments/labelled/feedback", json={"labels": labels}).status_code == 200
    out = tmp_path / "log.parquet"
    result = export(workspace, "labelled", str(out))
    assert result.returncode == 0, result.stderr
    assert "wrote 30 rows" in result.stdout
    table = pq.read_table(out)
    names = table.column_names
    assert names[:6] == ["request_id", "entity_id", "logged_at", "model", "version", "source"]
    assert set(X.columns) <= set(names)  # each input its own column
    assert {"prediction", "probability_0", "probability_1", "label", "label_source"} <= set(names)
    got = {r["request_id"]: r for r in table.to_pylist()}
    assert set(got) == {p["request_id"] for p in predictions}
    for i, p in enumerate(predictions):
        r = got[p["request_id"]]
        assert r["entity_id"] == f"p{i}" and r["model"] == "cancer" and r["version"] == 1 and r["source"] == "served"
        assert r["mean radius"] == pytest.approx(float(rows.iloc[i]["mean radius"]))
        assert r["prediction"] == p["prediction"]
        assert r["probability_1"] == pytest.approx(p["probabilities"]["1"])
        assert (r["label"], r["label_source"]) == ((p["prediction"], "feedback") if i < 10 else (None, None))


def test_export_by_time_and_its_errors(shared, workspace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server, X = served_as(shared, "timed")
    http.post(f"{server.url}/v1/deployments/timed/predict", json={"instances": X.iloc[:5].to_dict(orient="records")})
    log = workspace.prediction_log  # (written after the answer: wait for it)
    wait_until(lambda: log.count("timed") == 5, timeout=30, what="the rows to be logged")
    out = tmp_path / "later.parquet"
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    result = export(workspace, "timed", str(out), "--since", later)
    assert result.returncode == 0 and pq.read_table(out).num_rows == 0
    result = export(workspace, "timed", str(out), "--until", later)
    assert result.returncode == 0 and pq.read_table(out).num_rows == 5
    bad = export(workspace, "timed", str(out), "--since", "yesterday")
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr
    nowhere = export(workspace, "timed", str(tmp_path / "missing" / "x.parquet"))
    assert nowhere.returncode == 2 and "not a directory" in nowhere.stderr
    unknown = export(workspace, "nope", str(out))
    assert unknown.returncode == 1 and "nope" in unknown.stderr and "Traceback" not in unknown.stderr
    assert not list(Path(tmp_path).glob(".*.partial"))
