"""Feedback labels are checked against the deployed version's output before any is joined: a
classifier's label must be one of its classes (1, 1.0 and "1" are one class), a regressor's a finite
number. One bad label refuses the whole request with a 422 naming each; nothing of it is written.

One server per database for the module: every test only adds predictions and labels of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support.server_process import ServerProcess, http, wait_until

from matchday.config import Settings
from matchday.store import PredictionLogStore
from matchday.workspace import Workspace


def _frame(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"amount": rng.normal(50, 20, rows), "hour": rng.integers(0, 24, rows)})
    frame["flag"] = (frame["amount"] > 50).astype(int)
    frame["spend"] = frame["amount"] * 1.5 + frame["hour"]
    return frame


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def workspace(request: pytest.FixtureRequest, new_database, tmp_path_factory) -> Iterator[Workspace]:  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LinearRegression, LogisticRegression

    folder = tmp_path_factory.mktemp(f"labels-{request.param}")
    with new_database(request.param, folder) as url:
        ws = Workspace(Settings(home=folder / "home", database_url=url))
        frame = _frame()
        inputs = frame[["amount", "hour"]]
        ws.registry.register(
            "flag",
            LogisticRegression().fit(inputs, frame["flag"]),
            reference=frame[["amount", "hour", "flag"]],
            target="flag",
        )
        ws.registry.register(
            "spend",
            LinearRegression().fit(inputs, frame["spend"]),
            reference=frame[["amount", "hour", "spend"]],
            target="spend",
        )
        ws.deployments.deploy("flag", "flag:1")
        ws.deployments.deploy("spend", "spend:1")
        yield ws
        ws.close()


@pytest.fixture(scope="module")
def server(workspace: Workspace) -> Iterator[ServerProcess]:
    running = ServerProcess(workspace.settings.home, workspace.settings.database_url).start()
    yield running
    running.stop()


def _predict(server: ServerProcess, deployment: str, rows: int, ids: list[str] | None = None) -> list[str]:
    body: dict[str, object] = {"instances": [{"amount": 40.0 + i, "hour": i % 24} for i in range(rows)]}
    if ids is not None:
        body["ids"] = ids
    answer = http.post(f"{server.url}/v1/deployments/{deployment}/predict", json=body)
    assert answer.status_code == 200, answer.text
    return [p["request_id"] for p in answer.json()["predictions"]]


def _labels(workspace: Workspace, ids: list[str]) -> list[object]:
    """The labels the log holds for ``ids``, once the server's writer has written every row."""
    store = PredictionLogStore(workspace.database)

    def logged() -> list[Any] | None:
        records = [store.get(rid) for rid in ids]
        return records if all(records) else None

    return [r.label for r in wait_until(logged, timeout=30, what="the predictions to be logged")]


def _feedback(server: ServerProcess, deployment: str, labels: list[dict[str, object]]):  # type: ignore[no-untyped-def]
    return http.post(f"{server.url}/v1/deployments/{deployment}/feedback", json={"labels": labels}, timeout=30)


def test_a_label_that_is_not_a_class_refuses_the_whole_request(server: ServerProcess, workspace: Workspace) -> None:
    ids = _predict(server, "flag", 6, ids=[f"e{i}" for i in range(6)])
    labels = [
        {"request_id": ids[0], "label": 1},
        {"request_id": ids[1], "label": "yes"},
        {"request_id": ids[2], "label": "0"},
        {"request_id": ids[3], "label": True},
        {"request_id": ids[4], "label": 2},
        {"id": "e5", "label": None},
    ]
    response = _feedback(server, "flag", labels)
    assert response.status_code == 422, response.text
    body = response.json()
    assert "4 label(s)" in body["error"] and "flag:1" in body["error"]
    expected = "one of the classes [0, 1]"
    assert body["details"] == [
        {"field": "labels[1].label", "problem": f'"yes" is not {expected}', "value": "yes", "expected": expected},
        {"field": "labels[3].label", "problem": f"true is not {expected}", "value": True, "expected": expected},
        {"field": "labels[4].label", "problem": f"2 is not {expected}", "value": 2, "expected": expected},
        {"field": "labels[5].label", "problem": f"null is not {expected}", "value": None, "expected": expected},
    ]
    assert _labels(workspace, ids) == [None] * 6  # not even the good ones: no partial write


def test_labels_equal_to_a_class_as_the_log_compares_them_are_joined(
    server: ServerProcess, workspace: Workspace
) -> None:
    ids = _predict(server, "flag", 4)
    labels = [
        {"request_id": ids[0], "label": 1},
        {"request_id": ids[1], "label": 1.0},
        {"request_id": ids[2], "label": "0"},
        {"request_id": ids[3], "label": 0},
    ]
    response = _feedback(server, "flag", labels)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 4, "joined": 4, "unknown": []}
    assert None not in _labels(workspace, ids)


def test_a_regressors_labels_must_be_finite_numbers(server: ServerProcess, workspace: Workspace) -> None:
    ids = _predict(server, "spend", 4)
    labels = [
        {"request_id": ids[0], "label": 101.5},
        {"request_id": ids[1], "label": "101.5"},
        {"request_id": ids[2], "label": False},
        {"request_id": ids[3], "label": 7},
    ]
    response = _feedback(server, "spend", labels)
    assert response.status_code == 422, response.text
    assert [(d["field"], d["value"], d["expected"]) for d in response.json()["details"]] == [
        ("labels[1].label", "101.5", "a finite number"),
        ("labels[2].label", False, "a finite number"),
    ]
    assert _labels(workspace, ids) == [None] * 4

    good = [labels[0], labels[3], {"request_id": ids[1], "label": 1e308}]
    assert _feedback(server, "spend", good).json() == {"received": 3, "joined": 3, "unknown": []}


def test_unknown_deployments_and_malformed_bodies_keep_their_statuses(server: ServerProcess) -> None:
    assert _feedback(server, "ghost", [{"id": "a", "label": "yes"}]).status_code == 404
    assert _feedback(server, "flag", [{"label": 1}]).status_code == 400
