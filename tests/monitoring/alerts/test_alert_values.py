"""What an alert says about its numbers: a relative monitor's threshold stands on the same scale as the
value beside it, and a resolved alert keeps the value its message describes (the one that resolved it is
kept apart), on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from matchday.monitoring import AlertEngine, MonitorSpec, alert_body
from matchday.monitoring.alerts.monitors import judge
from matchday.store import MetricWindow
from matchday.workspace import Workspace

AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ACCURACY_DROP = MonitorSpec(
    name="accuracy-drop",
    metric="accuracy",
    window="100rows",
    relative_to="reference",
    when="< -0.05",
    breaches=1,
    min_rows=10,
)
ERROR_RATE = MonitorSpec(name="error-rate", metric="error_rate", window="5m", when="> 0.05", min_rows=10)


def window(i: int, **metrics: float) -> MetricWindow:
    start = AT + timedelta(minutes=5 * i)
    return MetricWindow("fraud", "demo-fraud", 1, "", "100rows", start, start, 100, {}, None, {"rows": 100, **metrics})


def test_a_relative_monitors_reason_names_the_value_and_its_change() -> None:
    verdict = judge(ACCURACY_DROP, {"rows": 100, "accuracy": 0.692}, reference=0.95)
    assert verdict.breached and verdict.value == 0.692 and verdict.compared == pytest.approx(-0.258)
    assert verdict.reason == "accuracy 0.692, -0.258 vs reference (meets < -0.05)"


def test_a_relative_alerts_threshold_is_on_its_values_scale(workspace: Workspace) -> None:
    engine = AlertEngine(workspace.alerts, workspace.monitor_state)
    change = engine.observe(
        window(0, accuracy=0.692), judge(ACCURACY_DROP, window(0, accuracy=0.692).metrics, reference=0.95), AT
    )
    assert change is not None and change.kind == "opened"
    alert = change.alert
    assert alert.value == pytest.approx(0.692) and alert.threshold == pytest.approx(0.90)  # 0.95 - 0.05
    assert alert.value < alert.threshold  # as the condition says: the value beside the line it crossed
    assert alert.data["condition"] == "< -0.05" and alert.data["relative_to"] == "reference"
    assert alert.data["compared"] == pytest.approx(-0.258) and alert.data["reference"] == 0.95
    assert "accuracy 0.692, -0.258 vs reference" in alert.message


def test_an_absolute_alerts_threshold_is_the_monitors(workspace: Workspace) -> None:
    engine = AlertEngine(workspace.alerts, workspace.monitor_state)
    change = engine.observe(window(0, error_rate=0.2), judge(ERROR_RATE, window(0, error_rate=0.2).metrics), AT)
    assert change is not None and (change.alert.value, change.alert.threshold) == (0.2, 0.05)


def test_a_resolved_alert_keeps_the_value_its_message_gives(workspace: Workspace) -> None:
    engine = AlertEngine(workspace.alerts, workspace.monitor_state)
    for i, accuracy in enumerate([0.692, 0.61]):  # opened, then breached again (worse)
        engine.observe(
            window(i, accuracy=accuracy), judge(ACCURACY_DROP, {"rows": 100, "accuracy": accuracy}, reference=0.95), AT
        )
    recovered = window(2, accuracy=0.94)
    change = engine.observe(recovered, judge(ACCURACY_DROP, recovered.metrics, reference=0.95), AT + timedelta(hours=1))
    assert change is not None and change.kind == "resolved"
    alert = change.alert
    assert alert.state == "resolved" and alert.value == pytest.approx(0.61)  # the last breach, not the recovery
    assert alert.value < alert.threshold  # still on the side the message says it was
    assert alert.data["resolved_value"] == pytest.approx(0.94)
    [stored] = workspace.alerts.list("fraud")
    assert (stored.value, stored.data["resolved_value"]) == (alert.value, alert.data["resolved_value"])
    body = alert_body(stored, "resolved")["alert"]
    assert body["value"] == pytest.approx(0.61) and body["data"]["resolved_value"] == pytest.approx(0.94)
