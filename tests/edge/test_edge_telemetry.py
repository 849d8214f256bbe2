"""The server side of edge telemetry, on both databases: devices registered with a token each, a sync's
rows landing in the prediction log at their own times (``source: edge``, the device), replays skipped and
acknowledged again, labels joining as feedback from the edge, and every bad sync refused whole.

One workspace per database for the module: each test registers devices of its own.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from matchday.auth import Principal, local_admin
from matchday.config import Settings
from matchday.edge import (
    DeviceNotBound,
    InvalidDevice,
    InvalidTelemetry,
    TooMuchTelemetry,
    WrongDeployment,
    request_id,
)
from matchday.store import (
    Database,
    DeploymentNotFound,
    EdgeDeviceExists,
    EdgeDeviceNotFound,
    EdgeDeviceStore,
    PredictionLogStore,
)
from matchday.workspace import Workspace

FEATURES = ["f0", "f1", "f2"]
_names = itertools.count()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def workspace(request: pytest.FixtureRequest, new_database, tmp_path_factory) -> Iterator[Workspace]:  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp(f"edge-{request.param}")
    with new_database(request.param, folder) as url:
        ws = Workspace(Settings(home=folder / "home", database_url=url))
        rng = np.random.default_rng(3)
        frame = pd.DataFrame(rng.normal(size=(300, 3)), columns=FEATURES)
        frame["y"] = (frame["f0"] + frame["f1"] > 0).astype(int)
        ws.registry.register(
            "churn", LogisticRegression().fit(frame[FEATURES], frame["y"]), reference=frame, target="y"
        )
        ws.deployments.deploy("checkout", "churn:1")
        ws.deployments.deploy("other", "churn:1")
        yield ws
        ws.close()


def _device(ws: Workspace, deployment: str = "checkout") -> tuple[str, Principal]:
    """A new device registered to ``deployment``, and the principal its token is."""
    name = f"dev-{next(_names)}"
    token, _ = ws.edge_telemetry.register(name, deployment, "test")
    return name, ws.access.bearer(token)


def _body(
    seqs: list[int], *, epoch: str, at: datetime | None = None, labels: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    at = at or datetime.now(UTC) - timedelta(hours=3)
    return {
        "deployment": "checkout",
        "epoch": epoch,
        "bundle": {"model": "churn", "version": 1, "sha256": "0" * 64},
        "predictions": [
            {
                "seq": s,
                "at": (at + timedelta(seconds=s)).isoformat(),
                "inputs": {"f0": 0.1 * s, "f1": -0.2, "f2": 1.0},
                "prediction": s % 2,
                "probabilities": [0.4, 0.6] if s % 2 else [0.7, 0.3],
                "latency_seconds": 0.0003,
                "model": "churn",
                "version": 1,
            }
            for s in seqs
        ],
        "labels": labels or [],
        **extra,
    }


def _logged(ws: Workspace) -> int:
    return PredictionLogStore(ws.database).count(roles=None, errors=None)


def test_migration_matches_the_model_and_the_store_keeps_devices(workspace: Workspace) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from matchday.store.schema import Base

    with workspace.database.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in differences if "edge_devices" in str(d)] == []
    store = EdgeDeviceStore(workspace.database)
    store.add("store-a", "checkout", "k" * 12, "test")
    with pytest.raises(EdgeDeviceExists, match="already registered"):
        store.add("store-a", "other", "k" * 12, "test")
    now = datetime.now(UTC)
    store.record_sync("store-a", at=now, rows=5, labels=1, model_ref="churn:1")
    record = store.record_sync("store-a", at=now, rows=2, labels=0, model_ref=None)
    assert (record.rows_received, record.labels_received, record.last_model_ref) == (7, 1, "churn:1")
    assert record.last_sync_at == now
    assert "store-a" in [d.device for d in store.list("checkout")] and store.list("nowhere") == []
    assert store.remove("store-a").rows_received == 7
    with pytest.raises(EdgeDeviceNotFound, match="matchday edge devices add store-a --deployment"):
        store.get("store-a")
    with pytest.raises(EdgeDeviceNotFound):
        store.record_sync("store-a", at=now, rows=1, labels=0, model_ref=None)


def test_registration_makes_a_scoped_predictor_token_bound_to_the_device(workspace: Workspace) -> None:
    edge = workspace.edge_telemetry
    token, record = edge.register("reg-1", "checkout", "test", expires="30d")
    principal = workspace.access.bearer(token)
    assert principal.key == record.token_key and principal.roles == {"predictor"}
    assert principal.deployments == {"checkout"}
    tokens_before = len(workspace.access.list_tokens())
    with pytest.raises(EdgeDeviceExists):
        edge.register("reg-1", "other", "test")
    with pytest.raises(DeploymentNotFound):
        edge.register("reg-2", "nowhere", "test")
    with pytest.raises(InvalidDevice, match="not a device name"):
        edge.register("bad/name", "checkout", "test")
    assert len(workspace.access.list_tokens()) == tokens_before  # no token made for a refused registration
    edge.remove("reg-1", "test")
    with pytest.raises(Exception, match="revoked"):
        workspace.access.bearer(token)
    with pytest.raises(EdgeDeviceNotFound):
        edge.receive("reg-1", _body([1], epoch="a" * 32), local_admin("test"))
    kinds = [e.kind for e in workspace.events.list(deployment="checkout", limit=50)]
    assert {"edge_device_added", "edge_device_removed"} <= set(kinds)


def test_rows_land_at_their_own_times_and_a_replay_is_acknowledged_again(workspace: Workspace) -> None:
    device, principal = _device(workspace)
    epoch = secrets.token_hex(16)
    at = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    body = _body([1, 2, 3], epoch=epoch, at=at)
    ack = workspace.edge_telemetry.receive(device, body, principal)
    assert (ack.written, ack.already_logged, ack.predictions) == (3, 0, [1, 2, 3])
    store = PredictionLogStore(workspace.database)
    row = store.get(request_id(device, epoch, 2))
    assert row is not None
    assert row.at == at + timedelta(seconds=2)
    assert row.routing == {
        "source": "edge",
        "device": device,
        "plan": "single",
        "arm": "primary",
        "model_ref": "churn:1",
    }
    assert row.inputs == {"f0": pytest.approx(0.2), "f1": -0.2, "f2": 1.0} and row.prediction == 0
    assert (row.deployment, row.model, row.version, row.role) == ("checkout", "churn", 1, "served")
    before = _logged(workspace)
    replay = workspace.edge_telemetry.receive(device, _body([2, 3, 4], epoch=epoch, at=at), principal)
    assert (replay.written, replay.already_logged, replay.predictions) == (1, 2, [2, 3, 4])
    assert _logged(workspace) == before + 1
    record = workspace.edge_telemetry.device(device)
    assert record.rows_received == 4 and record.last_sync_at is not None and record.last_model_ref == "churn:1"
    # a wiped buffer restarts its sequence under a new epoch: no collision with the old rows
    fresh = workspace.edge_telemetry.receive(device, _body([1], epoch=secrets.token_hex(16)), principal)
    assert fresh.written == 1


def test_labels_join_as_feedback_from_the_edge(workspace: Workspace) -> None:
    device, principal = _device(workspace)
    epoch = secrets.token_hex(16)
    workspace.edge_telemetry.receive(device, _body([1, 2], epoch=epoch), principal)
    labels = [
        {"id": 10, "seq": 1, "label": 1},  # a prediction of an earlier sync
        {"id": 11, "seq": 3, "label": 0},  # one in this very request
        {"id": 12, "seq": 99, "label": 1},  # never logged
        {"id": 13, "seq": 2, "label": "yes"},  # not a class of the model
    ]
    ack = workspace.edge_telemetry.receive(device, _body([3], epoch=epoch, labels=labels), principal)
    assert ack.labels_applied == 2 and ack.labels == [10, 11, 12, 13]
    unmatched = {u.id: u.reason for u in ack.labels_unmatched}
    assert set(unmatched) == {12, 13}
    assert "no logged prediction" in unmatched[12] and "seq 99" in unmatched[12]
    assert "not one of the classes" in unmatched[13]
    store = PredictionLogStore(workspace.database)
    for seq, label in ((1, 1), (3, 0)):
        row = store.get(request_id(device, epoch, seq))
        assert row is not None and (row.label, row.label_source) == (label, "edge")
    assert store.get(request_id(device, epoch, 2)).label is None  # type: ignore[union-attr]
    assert workspace.edge_telemetry.device(device).labels_received == 2
    assert ack.to_json()["acknowledged"] == {"predictions": [3], "labels": [10, 11, 12, 13]}


def test_the_sender_must_be_the_devices_own_token_or_an_operator(workspace: Workspace) -> None:
    device, _ = _device(workspace)
    _, someone_else = _device(workspace)
    with pytest.raises(DeviceNotBound, match=f"may not send telemetry for device {device}"):
        workspace.edge_telemetry.receive(device, _body([1], epoch="b" * 32), someone_else)
    token, _ = workspace.access.create_token(["predictor"], name="a client", created_by="test")
    with pytest.raises(DeviceNotBound):
        workspace.edge_telemetry.receive(device, _body([1], epoch="b" * 32), workspace.access.bearer(token))
    operator, _ = workspace.access.create_token(["operator"], name="a gateway", created_by="test")
    ack = workspace.edge_telemetry.receive(device, _body([1], epoch="b" * 32), workspace.access.bearer(operator))
    assert ack.written == 1
    # an operator of another deployment only is not an operator of this device's
    elsewhere, _ = workspace.access.create_token(
        ["operator"], name="other team", created_by="test", deployments=["payments"]
    )
    with pytest.raises(DeviceNotBound, match=f"may not send telemetry for device {device}"):
        workspace.edge_telemetry.receive(device, _body([2], epoch="b" * 32), workspace.access.bearer(elsewhere))
    here, _ = workspace.access.create_token(["operator"], name="team", created_by="test", deployments=["checkout"])
    assert (
        workspace.edge_telemetry.receive(device, _body([2], epoch="b" * 32), workspace.access.bearer(here)).written == 1
    )


def test_wrong_deployment_and_unknown_device(workspace: Workspace) -> None:
    device, principal = _device(workspace)
    before = _logged(workspace)
    with pytest.raises(WrongDeployment, match="registered to deployment 'checkout', not 'other'"):
        workspace.edge_telemetry.receive(device, {**_body([1], epoch="c" * 32), "deployment": "other"}, principal)
    with pytest.raises(EdgeDeviceNotFound, match="matchday edge devices add ghost --deployment NAME"):
        workspace.edge_telemetry.receive("ghost", _body([1], epoch="c" * 32), principal)
    assert _logged(workspace) == before


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p["inputs"].pop("f1"), r"predictions\[1\]\.inputs: missing input\(s\) f1"),
        (lambda p: p["inputs"].update(f0="lots"), r"predictions\[1\]\.inputs: .*f0"),
        (lambda p: p["inputs"].update(f0=[1, 2]), r"predictions\[1\]\.inputs"),
        (lambda p: p.update(version=7), r"churn:7 is not a registered version"),
        (lambda p: p.update(at=(datetime.now(UTC) + timedelta(hours=1)).isoformat()), r"after the server's clock"),
        (lambda p: p.update(at="2026-01-05T12:00:00"), r"has no UTC offset"),
        (lambda p: p.update(at="yesterday"), r"not an ISO 8601 time"),
        (lambda p: p.update(probabilities=[0.1, 0.2, 0.7]), r"3 probabilities for the 2 classes"),
        (lambda p: p.update(prediction={"a": 1}), r"prediction: must be a single value"),
        (lambda p: p.update(seq=1), r"predictions\[1\]\.seq: 1 is also predictions\[0\]'s"),
        (lambda p: p.pop("latency_seconds") and p.update(latency_seconds=-1), r"latency_seconds"),
    ],
    ids=[
        "missing-input",
        "text-for-a-number",
        "list-for-a-number",
        "unknown-version",
        "future",
        "naive-time",
        "bad-time",
        "probabilities-width",
        "object-prediction",
        "repeated-seq",
        "negative-latency",
    ],
)
def test_bad_rows_are_refused_with_nothing_written(workspace: Workspace, change: Any, expected: str) -> None:
    device, principal = _device(workspace)
    epoch = secrets.token_hex(16)
    body = _body([1, 2, 3], epoch=epoch, labels=[{"id": 1, "seq": 1, "label": 1}])
    change(body["predictions"][1])
    before = _logged(workspace)
    with pytest.raises(InvalidTelemetry, match=expected) as caught:
        workspace.edge_telemetry.receive(device, body, principal)
    assert _logged(workspace) == before
    assert PredictionLogStore(workspace.database).get(request_id(device, epoch, 1)) is None
    assert workspace.edge_telemetry.device(device).last_sync_at is None
    assert all(isinstance(p, dict) and "field" in p for p in caught.value.problems)
    # each row's problem names its seq (the device sets that row aside); a repeated seq is the body's problem
    assert {p.get("seq") for p in caught.value.problems} == ({None} if "is also" in expected else {2})


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"deployment": "checkout"},
        {"deployment": "checkout", "epoch": "short", "bundle": {"model": "churn", "version": 1}},
        {"deployment": "checkout", "epoch": "d" * 32, "bundle": {"model": "churn", "version": 1}, "predictions": {}},
        {
            "deployment": "checkout",
            "epoch": "d" * 32,
            "bundle": {"model": "churn", "version": 1},
            "labels": [{"id": "x", "seq": 0}],
        },
    ],
    ids=["not-an-object", "no-epoch", "bad-epoch", "predictions-not-a-list", "bad-label"],
)
def test_malformed_bodies_are_refused(workspace: Workspace, body: Any) -> None:
    device, principal = _device(workspace)
    with pytest.raises(InvalidTelemetry):
        workspace.edge_telemetry.receive(device, body, principal)


def test_too_many_rows_in_one_request(workspace: Workspace) -> None:
    device, principal = _device(workspace)
    before = _logged(workspace)
    with pytest.raises(TooMuchTelemetry, match="1,001 predictions in one request; at most 1,000"):
        workspace.edge_telemetry.receive(device, _body(list(range(1, 1002)), epoch="e" * 32), principal)
    many_labels = [{"id": i, "seq": 1, "label": 1} for i in range(1001)]
    with pytest.raises(TooMuchTelemetry, match="labels"):
        workspace.edge_telemetry.receive(device, _body([1], epoch="e" * 32, labels=many_labels), principal)
    assert _logged(workspace) == before
    ack = workspace.edge_telemetry.receive(device, _body(list(range(1, 1001)), epoch="e" * 32), principal)
    assert ack.written == 1000


def test_a_database_that_goes_away_acknowledges_nothing(workspace: Workspace, tmp_path: Any) -> None:
    """The service answers only after its writes: with the database unreachable it raises, nothing half-done."""
    from matchday.store import StoreUnavailable

    device, principal = _device(workspace)
    edge = workspace.edge_telemetry
    broken = PredictionLogStore(Database("postgresql+psycopg://nobody@127.0.0.1:1/none", migrate=False))
    original = edge.log
    edge.log = broken
    try:
        with pytest.raises(StoreUnavailable):
            edge.receive(device, _body([1], epoch="f" * 32), principal)
    finally:
        edge.log = original
    assert edge.device(device).last_sync_at is None
    with workspace.database.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1


def _device_rows(seqs: range, at: datetime, shift: float, rng: np.random.Generator) -> list[dict[str, Any]]:
    values = rng.normal(size=(len(seqs), 3)) + shift
    return [
        {
            "seq": s,
            "at": (at + timedelta(seconds=i)).isoformat(),
            "inputs": dict(zip(FEATURES, map(float, row), strict=True)),
            "prediction": int(row[0] + row[1] > 0),
            "probabilities": None,
            "latency_seconds": 0.0002,
            "model": "churn",
            "version": 1,
        }
        for i, (s, row) in enumerate(zip(seqs, values, strict=True))
    ]


def test_a_devices_drifted_rows_raise_the_deployments_drift_alert(database_url: str, tmp_path: Any) -> None:
    """Rows synced hours after they were predicted land in the windows of their own time (the whole traffic's,
    the edge's and the device's), are judged by the drift monitor on the window by count, and the deployment's
    alert fires on the drifted ones only; the dashboard charts them by source and by device."""
    from sklearn.linear_model import LogisticRegression

    from matchday.dashboard import DashboardPages, parse_range

    ws = Workspace(Settings(home=tmp_path / "home", database_url=database_url, monitoring={"count_window": 200}))
    try:
        rng = np.random.default_rng(11)
        frame = pd.DataFrame(rng.normal(size=(400, 3)), columns=FEATURES)
        frame["y"] = (frame["f0"] + frame["f1"] > 0).astype(int)
        ws.registry.register(
            "churn", LogisticRegression().fit(frame[FEATURES], frame["y"]), reference=frame, target="y"
        )
        ws.deployments.deploy("checkout", "churn:1")
        token, _ = ws.edge_telemetry.register("truck-7", "checkout", "test")
        sender = ws.access.bearer(token)
        epoch = secrets.token_hex(16)
        now = datetime.now(UTC).replace(microsecond=0)
        earlier = now - timedelta(hours=3)

        def sync(seqs: range, at: datetime, shift: float) -> None:
            body = {
                "deployment": "checkout",
                "epoch": epoch,
                "bundle": {"model": "churn", "version": 1},
                "predictions": _device_rows(seqs, at, shift, rng),
            }
            assert ws.edge_telemetry.receive("truck-7", body, sender, now=now).written == len(seqs)

        def drift_alerts() -> list[Any]:
            return [a for a in ws.alerts.firing("checkout") if a.monitor == "data-drift"]

        sync(range(1, 401), earlier, 0.0)  # three hours old, like the reference
        ws.monitoring.tick(now)
        assert drift_alerts() == []
        old = ws.windows.series(
            "checkout", "5m", since=earlier - timedelta(minutes=5), until=earlier + timedelta(minutes=10)
        )
        assert sum(w.rows for w in old) == 400 and min(w.start for w in old) <= earlier
        for segment in ("@source=edge", "@device=truck-7"):
            mine = ws.windows.series(
                "checkout",
                "5m",
                since=earlier - timedelta(minutes=5),
                until=earlier + timedelta(minutes=10),
                segment=segment,
            )
            assert sum(w.rows for w in mine) == 400, segment
        for start in range(401, 801, 100):  # the device's sensors drift: four syncs, a tick after each
            sync(range(start, start + 100), earlier + timedelta(hours=1, seconds=start), 3.0)
            ws.monitoring.tick(now)
        fired = drift_alerts()
        assert len(fired) == 1 and (fired[0].model, fired[0].version) == ("churn", 1)

        pages = DashboardPages.from_workspace(ws)
        span = parse_range("24h", now=now)
        page = pages.deployment("checkout", span, "5m")
        sources = next(c for c in page["charts"] if c["id"] == "sources")
        by_label = {s["label"]: s["values"] for s in sources["series"]}
        assert sum(v or 0 for v in by_label["edge"]) == 800 and sum(v or 0 for v in by_label["online"]) == 0
        assert page["devices"] == ["truck-7"]
        device_page = pages.deployment("checkout", span, None, "truck-7")
        throughput = next(c for c in device_page["charts"] if c["id"] == "throughput")
        assert throughput["points"] > 0 and device_page["device"] == "truck-7"
        assert pages.deployment("checkout", span, None, "no-such-device")["windows"] == 0
        listed = pages.devices()["devices"]
        assert [(d.device, d.rows_received) for d in listed] == [("truck-7", 800)]
    finally:
        ws.close()
