"""`SeriesKey` and `MonitorKey` write exactly the text keys databases already hold, and read them back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from support.monitoring_stream import log_rows, scripted_stream
from support.rollout_support import cancer_frame, fitted

from matchday.monitoring.loop import WATCHED_KEY
from matchday.monitoring.windows import FAILURES_KEY, MonitorKey, SeriesKey
from matchday.store import PredictionLogStore
from matchday.workspace import Workspace, build_monitoring

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("key", "text"),
    [
        (SeriesKey("fraud", "demo-fraud", 2), "fraud\x1fdemo-fraud\x1f2"),
        (SeriesKey("a", "m.v_1", 2147483647), "a\x1fm.v_1\x1f2147483647"),
    ],
)
def test_a_series_key_is_todays_text(key: SeriesKey, text: str) -> None:
    assert key.to_text() == text
    assert SeriesKey.from_text(text) == key
    assert isinstance(SeriesKey.from_text(text).version, int)
    assert key == (key.deployment, key.model, key.version)  # still the (deployment, model, version) tuple


@pytest.mark.parametrize(
    ("key", "text"),
    [
        (
            MonitorKey("monitor", "data-drift", SeriesKey("fraud", "demo-fraud", 2), ""),
            "monitor\x1fdata-drift\x1ffraud\x1fdemo-fraud:2\x1f",
        ),
        (
            MonitorKey("judged", "accuracy drop", SeriesKey("fraud", "f", 10), "country=DE"),
            "judged\x1faccuracy drop\x1ffraud\x1ff:10\x1fcountry=DE",
        ),
        (  # a segment's value is the caller's data: it may hold anything, the separator too
            MonitorKey("monitor", "m", SeriesKey("d", "x", 1), "city=a\x1fb:c"),
            "monitor\x1fm\x1fd\x1fx:1\x1fcity=a\x1fb:c",
        ),
    ],
)
def test_a_monitor_key_is_todays_text(key: MonitorKey, text: str) -> None:
    assert key.to_text() == text
    assert MonitorKey.from_text(text) == key


def test_the_fixed_keys_are_unchanged() -> None:
    assert FAILURES_KEY == "monitoring\x1ffailures"
    assert WATCHED_KEY == "loop\x1fdeployments"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_tick_stores_its_state_under_the_keys_it_always_did(workspace: Workspace) -> None:
    """The keys a loop with a firing monitor writes, spelled as the code before `SeriesKey` spelled them."""
    X, _ = cancer_frame()
    model, version = workspace.registry.register("cancer", fitted("base")[0], reference=X).ref.split(":")
    workspace.settings = workspace.settings.model_copy(
        update={
            "monitoring": workspace.settings.monitoring.model_copy(update={"count_window": 100}),
            "monitors": [{"name": "busy", "metric": "rows", "window": "100rows", "when": "> 10"}],
        }
    )
    loop = build_monitoring(workspace)
    stream = scripted_stream(stationary=150, drifted=0, after=0)
    rows = log_rows(
        stream, 0, 150, deployment="till", model=model, version=int(version), at=T0, spacing=timedelta(seconds=1)
    )
    PredictionLogStore(workspace.database).insert(rows)
    result = loop.tick(T0 + timedelta(minutes=10))
    assert [c.kind for c in result.changes] == ["opened"]
    with workspace.database.session() as s:
        keys = set(s.scalars(sa.text("SELECT key FROM monitor_state")))
    deployment = "till"
    fixed = {"summarizer", "loop\x1fdeployments", f"panes\x1f{deployment}\x1f{model}\x1f{version}"}
    by_monitor = {
        f"{kind}\x1f{m.name}\x1f{deployment}\x1f{model}:{version}\x1f"
        for m in loop.monitors_of(deployment)
        for kind in ("monitor", "judged")
    }
    assert fixed <= keys and keys - fixed <= by_monitor
    assert {
        f"monitor\x1fbusy\x1f{deployment}\x1f{model}:{version}\x1f",
        f"judged\x1fbusy\x1f{deployment}\x1f{model}:{version}\x1f",
    } <= keys
    with workspace.database.session() as s:
        state = s.scalar(sa.text("SELECT state FROM monitor_state WHERE key = 'summarizer'"))
    summarizer = json.loads(state) if isinstance(state, str) else state
    assert list(summarizer["counts"]) == [f"{deployment}\x1f{model}\x1f{version}"]
