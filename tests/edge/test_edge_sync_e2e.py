"""A device session against a real `matchday serve`: offline at first (the server is down: sync says so,
every row stays buffered), then the server comes back and the rows land in the prediction log exactly once,
even when an acknowledgement is lost on the way back and the sync is retried; a row the server refuses is
set aside with its reason while the rest land."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from support.edge_support import FEATURES, frame, workspace
from support.server_process import ServerProcess

from matchday.edge import export_bundle
from matchday.store import PredictionLogStore
from matchday.workspace import Workspace
from matchday_edge import EdgeModel, request_id, urllib_transport
from matchday_edge.buffer import NewPrediction


def _till(tmp_path: Path, name: str) -> tuple[Workspace, Any, EdgeModel, str]:
    """A model deployed as checkout, exported, and loaded on device ``name`` (registered, with its token)."""
    ws = workspace(tmp_path)
    data = frame()
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(data[FEATURES], data["y"])
    ws.registry.register("churn", model, reference=data[[*FEATURES, "y"]], target="y")
    ws.deployments.deploy("checkout", "churn:1")
    bundle = export_bundle(ws.registry, "churn:1", tmp_path / "bundle", signer=ws.edge_signer, deployment="checkout")
    token, _ = ws.edge_telemetry.register(name, "checkout", "test")
    device = EdgeModel.load(
        bundle.path, public_key=ws.edge_signer.public_key_hex, device=name, buffer=tmp_path / "telemetry.db"
    )
    return ws, model, device, token


@pytest.mark.slow
def test_offline_then_one_sync_delivers_every_row_once_despite_a_lost_acknowledgement(tmp_path: Path) -> None:
    ws, model, device, token = _till(tmp_path, "till-7")
    server = ServerProcess(ws.settings.home, str(ws.settings.database_url))

    rows = frame(rows=45, seed=8)[FEATURES].to_dict("records")
    answers = [p for start in range(0, 45, 15) for p in device.score(rows[start : start + 15])]
    for p in answers[:5] + answers[-5:]:  # labels on the first rows and on rows past the first batches
        device.label(p, int(p.label))
    assert device.predict(rows[:1]).tolist() == model.predict(frame(rows=45, seed=8)[FEATURES][:1]).tolist()
    buffer = device.buffer
    assert buffer is not None

    offline = device.sync(server.url, token, timeout=2)  # the server is down
    assert not offline.complete and "unreachable" in (offline.reason or "") and offline.requests == 0
    assert buffer.stats().predictions == 46 and buffer.stats().labels == 10

    with server.start():
        calls = []

        def loses_the_second_reply(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
            answer = urllib_transport(url, body, headers, timeout)
            calls.append(answer[0])
            if len(calls) == 2:  # the server committed the batch; its answer never reaches the device
                raise ConnectionResetError("connection reset by peer")
            return answer

        lost = device.sync(server.url, token, batch_size=20, transport=loses_the_second_reply)
        assert calls == [200, 200] and not lost.complete and "unreachable" in (lost.reason or "")
        # the labels of rows 41-45 wait for their predictions: sent before them, the server could not match them
        assert lost.acknowledged_predictions == 20 and lost.acknowledged_labels == 5
        assert lost.labels_applied == 5 and lost.labels_unmatched == []
        assert buffer.stats().predictions == 26  # the lost batch stays, to be sent again

        retried = device.sync(server.url, token, batch_size=20)
        assert retried.complete, retried.reason
        assert (retried.already_logged, retried.written, retried.acknowledged_predictions) == (20, 6, 26)
        assert (retried.labels_applied, retried.labels_unmatched, retried.acknowledged_labels) == (5, [], 5)
        assert buffer.stats().predictions == 0 and buffer.stats().labels == 0

    log = PredictionLogStore(ws.database)
    logged = log.request_ids("checkout")
    expected = {request_id("till-7", buffer.epoch, seq) for seq in range(1, 47)}
    assert len(logged) == 46 and set(logged) == expected  # every row, once
    first = log.get(answers[0].request_id or "")
    assert first is not None and first.routing["source"] == "edge" and first.routing["device"] == "till-7"
    assert first.prediction == answers[0].label and first.label == answers[0].label and first.label_source == "edge"
    for p in answers[-5:]:  # every label landed, the last batch's too
        row = log.get(p.request_id or "")
        assert row is not None and row.label == p.label and row.label_source == "edge", p
    assert ws.edge_telemetry.device("till-7").rows_received == 46
    device.close()
    ws.close()


@pytest.mark.slow
def test_a_row_the_server_refuses_is_set_aside_and_the_rest_land_once(tmp_path: Path) -> None:
    ws, _, device, token = _till(tmp_path, "till-8")
    buffer = device.buffer
    assert buffer is not None
    rows = frame(rows=10, seed=3)[FEATURES].to_dict("records")
    device.score(rows[:5])
    # a row the server's signature refuses (written by a runtime that kept "a" as text), among good ones
    bad = json.dumps({**rows[0], "a": "n/a"}).encode()
    (bad_seq,) = buffer.append_predictions([NewPrediction(time.time(), "churn", 1, bad, "json", "1", None, 1e-4)])
    device.score(rows[5:])
    device.label(1, 0)
    device.label(bad_seq, 1)

    with ServerProcess(ws.settings.home, str(ws.settings.database_url)).start() as server:
        result = device.sync(server.url, token, batch_size=20)
        assert result.complete and result.reason is None, result
        assert (result.written, result.already_logged, result.labels_applied) == (10, 0, 1)
        assert (result.set_aside, result.set_aside_labels) == (1, 1)
        (refusal,) = result.refusals
        assert refusal["seq"] == bad_seq == 6 and refusal["reason"].startswith("predictions[5].inputs: ")
        assert "a: cannot read string as float" in refusal["reason"], refusal["reason"]
        again = device.sync(server.url, token)
        assert again.complete and again.requests == 0  # nothing left to send: the bad row is not sent again

    (refused,) = device.refused()
    assert refused.seq == bad_seq and refused.reason == refusal["reason"] and refused.labels == [1]
    assert refused.inputs["a"] == "n/a" and refused.model == "churn" and refused.version == 1
    stats = buffer.stats()
    assert (stats.predictions, stats.labels, stats.refused, stats.refused_labels) == (0, 0, 1, 1)
    log = PredictionLogStore(ws.database)
    expected = {request_id("till-8", buffer.epoch, seq) for seq in range(1, 12) if seq != bad_seq}
    assert sorted(log.request_ids("checkout")) == sorted(expected)  # each good row once, the bad one not at all
    assert ws.edge_telemetry.device("till-8").rows_received == 10
    device.close()
    ws.close()
