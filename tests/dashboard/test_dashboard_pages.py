"""The dashboard's page service and routes in-process, on stored windows built by a real monitoring tick:
what each page shows, 404s and 400s as pages, and no page reading the prediction log's rows."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from support.monitoring_stream import log_rows, scripted_stream
from support.rollout_support import cancer_frame, fitted

from matchday.config import Settings
from matchday.dashboard import BadTimeRange, DashboardPages, PageNotFound, mount_dashboard, parse_range
from matchday.monitoring import UnknownWindow
from matchday.store import PredictionLogStore
from matchday.workspace import Workspace

NOW = datetime.now(UTC).replace(microsecond=0)
T0 = NOW - timedelta(minutes=45)
MONITORS = [
    {
        "name": "inputs-drifted",
        "metric": "drift_share",
        "window": "5m",
        "when": ">= 0.3",
        "min_rows": 50,
        "deployment": "cancer",
    }
]


@pytest.fixture(scope="module")
def ws(store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """cancer:1 (champion) served for 30 minutes with a drifted stretch and labels, then a canary of cancer:2."""
    home: Path = tmp_path_factory.mktemp("dashboard")
    ws = Workspace(Settings(home=home, database_url=store_url, monitors=MONITORS))
    X, _ = cancer_frame()
    ws.registry.register("cancer", fitted("base")[0], reference=X, alias="champion", metrics={"accuracy": 0.97})
    ws.registry.register("cancer", fitted("better")[0], reference=X, metrics={"accuracy": 0.98})
    ws.deployments.deploy("cancer", "cancer@champion")
    stream = scripted_stream(stationary=400, drifted=300, after=500)
    log = PredictionLogStore(ws.database)
    log.insert(
        log_rows(stream, 0, 900, deployment="cancer", model="cancer", version=1, at=T0, spacing=timedelta(seconds=2))
    )
    log.apply_labels(
        "cancer",
        [
            ("request_id", r["request_id"], int(stream.labels[i]))
            for i, r in enumerate(log_rows(stream, 0, 600, deployment="cancer", model="cancer", version=1, at=T0))
        ],
    )
    ws.rollouts.start("cancer", "cancer:2", {"steps": [10, 50, 100], "interval": "1h"})
    log.insert(
        log_rows(
            stream,
            900,
            1200,
            deployment="cancer",
            model="cancer",
            version=2,
            at=T0 + timedelta(minutes=30),
            spacing=timedelta(seconds=1),
        )
    )
    ws.monitoring.tick(NOW)
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def pages(ws: Workspace) -> DashboardPages:
    return DashboardPages.from_workspace(ws)


@pytest.fixture(scope="module")
def client(pages: DashboardPages, ws: Workspace) -> Iterator[TestClient]:
    app = FastAPI()
    mount_dashboard(app, lambda: pages, lambda: ws.access)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def test_the_overview_lists_each_deployment_with_its_split_and_rollout(pages: DashboardPages) -> None:
    page = pages.overview(now=NOW)
    [d] = page["deployments"]
    assert d["name"] == "cancer" and d["rollout"].candidate == "cancer:2"
    assert [(p["ref"], p["arm"]) for p in d["split"]] == [("cancer:1", "baseline"), ("cancer:2", "candidate")]
    assert abs(sum(p["share"] for p in d["split"]) - 1) < 1e-9


def test_the_deployment_page_has_a_line_per_version_and_a_drift_heat_map(pages: DashboardPages) -> None:
    page = pages.deployment("cancer", parse_range("1h"))  # now: the rollout started after NOW
    assert page["width"] == "5m" and page["windows"] >= 7
    charts = {c["id"]: c for c in page["charts"]}
    assert set(charts) == {"throughput", "latency", "errors", "outputs", "performance", "drift"}
    throughput = charts["throughput"]
    assert {s["label"] for s in throughput["series"]} == {"rows/s cancer:1", "rows/s cancer:2"}
    assert all(len(s["values"]) == len(throughput["x"]) for s in throughput["series"])
    assert charts["performance"]["points"] > 0 and charts["outputs"]["points"] > 0
    labels = {s["label"] for s in charts["performance"]["series"]}
    assert "accuracy cancer:1" in labels and "estimated accuracy cancer:1" in labels
    heat = page["heatmap"]
    assert "mean radius" in [r["feature"] for r in heat["rows"]] and heat["points"] > 0
    radius = next(r for r in heat["rows"] if r["feature"] == "mean radius")
    assert any(c and c["drifted"] for c in radius["cells"]) and any(c and not c["drifted"] for c in radius["cells"])
    kinds = {e["kind"] for e in page["events"]}
    assert {"started", "alert"} <= kinds


def test_the_drift_drill_down_overlays_reference_and_current(pages: DashboardPages) -> None:
    page = pages.drift("cancer", "mean radius", parse_range("1h", now=NOW))
    result = page["result"]
    assert page["ref"] == "cancer:1" and result is not None and result.test and result.threshold > 0
    histogram, score = page["charts"]
    assert histogram["kind"] == "quantiles" and len(histogram["x"]) == len(histogram["series"][0]["values"])
    assert histogram["points"] > 0 and score["points"] >= 6
    assert score["series"][-1]["label"] == "threshold"
    candidate = pages.drift("cancer", "mean radius", parse_range("1h", now=NOW), version=2)
    assert candidate["ref"] == "cancer:2" and candidate["result"].current_rows == 300


def test_the_drift_histogram_has_the_reference_s_quantile_bins(pages: DashboardPages) -> None:
    """Each bin holds a twentieth of the reference (equal-width bins put most of a skewed input in two),
    drawn equally wide with the values at their edges; the current shares add up to 1."""
    page = pages.drift("cancer", "mean radius", parse_range("1h", now=NOW))
    histogram = page["charts"][0]
    reference, current = (s["values"][:-1] for s in histogram["series"])  # the last point closes the last step
    edges = histogram["edges"]
    assert len(edges) == len(reference) + 1 == 21 and edges == sorted(edges)
    assert histogram["x"] == list(range(21))
    assert max(reference) - min(reference) < 0.01 and abs(sum(reference) - 1) < 1e-9
    assert abs(sum(current) - 1) < 1e-9 and histogram["y"]["percent"]


def test_quantile_bins_spread_a_skewed_reference_and_count_the_current_data_as_numpy_does() -> None:
    import numpy as np
    import pyarrow as pa

    from matchday.dashboard.charts import quantile_bins
    from matchday.monitoring import compare_summary_to_profile, summarize_table
    from matchday.registry.profile import profile_table

    rng = np.random.default_rng(7)
    reference = rng.lognormal(0, 1.5, 5000)
    current = rng.lognormal(0.3, 1.5, 3000)
    profile = profile_table(pa.table({"amount": reference}))
    summary = summarize_table(pa.table({"amount": current}))
    engine = compare_summary_to_profile(profile, summary).columns["amount"].histogram
    assert sum(sorted(engine["reference"])[-2:]) > 0.8  # what the page drew before: the mass in two bins
    bins = quantile_bins(profile["columns"]["amount"], summary["columns"]["amount"])
    assert bins is not None and len(bins["reference"]) == 20
    assert np.allclose(bins["reference"], 0.05, atol=0.001)
    edges = np.array(bins["edges"])
    exact = np.histogram(current, edges)[0] / current.size  # the sketch's values are within 0.5% of the real ones
    assert np.abs(np.array(bins["current"]) - exact).max() < 0.01
    assert (edges[0], edges[-1]) == (min(reference.min(), current.min()), max(reference.max(), current.max()))


def test_charts_of_shares_have_an_axis_for_a_share(pages: DashboardPages) -> None:
    """The error rate's axis runs from 0 to at most 1 in percent (an all-zero series got 0-100); the drift
    chart's share and scores from 0 to at most 1; a chart of counts keeps its own axis."""
    charts = {c["id"]: c for c in pages.deployment("cancer", parse_range("1h"))["charts"]}
    errors = charts["errors"]
    assert errors["unit"] == "%" and errors["y"]["min"] == 0 and 0 < errors["y"]["max"] <= 1
    assert errors["y"]["percent"] and max(v or 0 for s in errors["series"] for v in s["values"]) <= errors["y"]["max"]
    drift = charts["drift"]
    assert drift["y"]["min"] == 0 and drift["y"]["max"] <= 1 and not drift["y"]["percent"]
    assert charts["outputs"]["y"]["percent"] and charts["outputs"]["y"]["max"] == 1
    assert charts["throughput"]["y"] is None


def test_event_marks_carry_their_colour_and_each_chart_a_key(pages: DashboardPages, client: TestClient) -> None:
    """Marks are drawn as markers with a tooltip, not as text stacked on the axis: each chart says what its
    colours mean and how many marks of each it has."""
    page = pages.deployment("cancer", parse_range("1h"))
    throughput = next(c for c in page["charts"] if c["id"] == "throughput")
    assert throughput["events"] and all(e["colour"].startswith("#") for e in throughput["events"])
    key = {k["label"]: k["count"] for k in throughput["key"]}
    assert key["rollout started"] == 1 and key["alert opened"] == sum(1 for e in page["events"] if e["kind"] == "alert")
    text = html.unescape(client.get("/deployments/cancer?range=1h").text)
    assert 'id="chart-throughput-key"' in text and "alert opened" in text and "hover a mark" in text


def test_the_rollout_page_says_its_plan_in_words_and_roll_back_as_a_verb(client: TestClient) -> None:
    text = html.unescape(client.get("/deployments/cancer/rollout").text)
    assert "10% of traffic, held at least 1 h and until each version has answered 200 rows" in text
    assert "100%: promoted" in text and "error rate: at most 1 percentage points above" in text
    assert "max_error_rate_increase" not in text and '{"labels"' not in text  # no raw JSON
    assert ">Roll back</a>" in text and "Rollback<" not in text
    confirm = html.unescape(client.get("/deployments/cancer/rollout/rollback").text)
    assert "Roll back the rollout of cancer?" in confirm and "Yes, roll back" in confirm
    assert "Rollback" not in confirm


def test_a_blue_green_rollout_page_shows_no_canary_steps(tmp_path: Path) -> None:
    """A blue-green plan is stored with the canary's default steps; its page says what blue-green does."""
    ws = Workspace(Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'matchday.db'}"))
    try:
        X, _ = cancer_frame()
        ws.registry.register("cancer", fitted("base")[0], reference=X.head(60), alias="champion")
        ws.registry.register("cancer", fitted("better")[0], reference=X.head(60))
        ws.deployments.deploy("cancer", "cancer@champion")
        ws.rollouts.start("cancer", "cancer:2", {"strategy": "bluegreen"})
        assert ws.rollouts.current("cancer").plan["steps"]  # stored, never taken
        pages = DashboardPages.from_workspace(ws)
        page = pages.rollout("cancer")
        assert page["plan"]["strategy"] == "blue-green" and page["plan"]["steps"] == [] == page["plan"]["gates"]
        app = FastAPI()
        mount_dashboard(app, lambda: pages, lambda: ws.access)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            text = html.unescape(client.get("/deployments/cancer/rollout").text)
        assert "blue-green from" in text and "all traffic switches to it at once" in text
        assert "% of traffic" not in text and 'id="plan-steps"' not in text and 'id="steps"' not in text
    finally:
        ws.close()


def test_the_drill_down_by_count_window_compares_every_row_of_the_range(pages: DashboardPages) -> None:
    """Scores per count window, but the histogram adds up the range's time windows: every row of the
    range, however many count windows it holds (it once kept only the newest 500)."""
    by_time = pages.drift("cancer", "mean radius", parse_range("1h", now=NOW))
    by_count = pages.drift("cancer", "mean radius", parse_range("1h", now=NOW), width="1000rows")
    assert by_count["width"] == "1000rows" and by_count["merged_width"] == "5m"
    assert by_count["result"].current_rows == by_time["result"].current_rows == 900
    assert by_count["result"].statistic == by_time["result"].statistic


def test_the_rollout_page_shows_steps_arms_and_actions(pages: DashboardPages) -> None:
    page = pages.rollout("cancer", now=NOW)
    assert [s["weight"] for s in page["steps"]] == [10, 50, 100]
    assert page["steps"][0]["state"] == "running" and page["actions"] == ["pause", "promote", "rollback"]
    assert [e.kind for e in page["events"]] == ["started"]
    assert pages.confirm("cancer", "promote")["effect"].startswith("cancer:2 becomes")


def test_models_and_alerts_pages(pages: DashboardPages) -> None:
    model = pages.model("cancer")
    assert [v.version for v in model["versions"]] == [2, 1] and model["metric_names"] == ["accuracy"]
    assert model["aliases"][0].alias == "champion"
    alerts = pages.alerts()
    rows = alerts["firing"] + alerts["resolved"]
    assert rows and all(r["monitor"] is not None for r in rows if r["alert"].monitor == "inputs-drifted")


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda p: p.deployment("nope", parse_range()), PageNotFound),
        (lambda p: p.drift("cancer", "no such feature", parse_range()), PageNotFound),
        (lambda p: p.model("nope"), PageNotFound),
        (lambda p: p.confirm("cancer", "explode"), PageNotFound),
        (lambda p: p.deployment("cancer", parse_range(), "7minutes"), UnknownWindow),  # monitoring's reader
        (lambda p: p.alerts("sleeping"), BadTimeRange),
    ],
    ids=["deployment", "feature", "model", "action", "window", "alert-state"],
)
def test_unknown_names_and_bad_input_are_our_errors(pages: DashboardPages, call: object, error: type) -> None:
    with pytest.raises(error):
        call(pages)  # type: ignore[operator]


@pytest.mark.parametrize(
    "query",
    ["range=2y", "since=yesterday", "since=2026-11-27T10:00&until=2026-11-27T09:00", "range=1h&since=2026-11-27T10:00"],
)
def test_a_bad_time_range_is_refused(query: str) -> None:
    params = dict(p.split("=", 1) for p in query.split("&"))
    with pytest.raises(BadTimeRange):
        parse_range(params.get("range"), params.get("since"), params.get("until"))


def test_every_page_renders_and_bad_input_is_an_html_page(client: TestClient) -> None:
    for path in [
        "/",
        "/deployments/cancer",
        "/deployments/cancer?range=1h&window=5m",
        "/deployments/cancer/drift/mean%20radius",
        "/deployments/cancer/rollout",
        "/deployments/cancer/rollout/promote",
        "/models",
        "/models/cancer",
        "/alerts",
        "/alerts?state=firing",
    ]:
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text[:2000])
        assert answer.headers["content-type"].startswith("text/html")
    for path, status, words in [
        ("/deployments/nope", 404, "no deployment 'nope'"),
        ("/deployments/cancer/drift/nothing", 404, "no input feature"),
        ("/models/nope", 404, "no model 'nope'"),
        ("/deployments/cancer?range=2y", 400, "unknown range"),
        ("/deployments/cancer?window=7rows", 400, "no windows of '7rows'"),
        ("/deployments/cancer?window=7m", 400, "unknown window '7m'; one of 5m, 1h, 1d,"),
        ("/deployments/cancer?device=till-1&window=1000rows", 400, "windows by time only"),
        ("/deployments/cancer?since=2026-13-01", 400, "is not a time"),
        ("/deployments/cancer/drift/mean%20radius?version=x", 400, "not a version"),
    ]:
        answer = client.get(path)
        text = html.unescape(answer.text)
        assert answer.status_code == status and words in text and "Traceback" not in text, path
    assert client.get("/static/dashboard/uPlot.iife.min.js").status_code == 200


def test_a_rollout_action_from_another_origin_is_refused(client: TestClient, ws: Workspace) -> None:
    answer = client.post("/deployments/cancer/rollout/pause", headers={"origin": "http://elsewhere.example"})
    assert answer.status_code == 403
    assert ws.rollouts.active("cancer").state == "running"
    assert client.post("/deployments/cancer/rollout/explode").status_code == 404
    answer = client.post("/deployments/cancer/rollout/resume")  # it is running, not paused
    assert answer.status_code == 409 and "is not paused" in answer.text


def test_no_page_reads_the_prediction_log(pages: DashboardPages, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages read stored windows only, so a million logged rows cost them nothing."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a page read the prediction log")

    for name in [n for n in vars(PredictionLogStore) if not n.startswith("_")]:
        monkeypatch.setattr(PredictionLogStore, name, refuse)
    span = parse_range("1h", now=NOW)
    pages.overview(now=NOW)
    pages.deployment("cancer", span)
    pages.drift("cancer", "mean radius", span)
    pages.rollout("cancer", now=NOW)
    pages.models()
    pages.model("cancer")
    pages.alerts()


def test_an_empty_store_and_a_deployment_without_traffic_render(tmp_path: Path) -> None:
    """Every page has something to say before any traffic: idle, no data in this range, no rollout yet."""
    ws = Workspace(Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'matchday.db'}"))
    try:
        pages = DashboardPages.from_workspace(ws)
        app = FastAPI()
        mount_dashboard(app, lambda: pages, lambda: ws.access)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            assert "No deployment yet" in client.get("/").text
            X, _ = cancer_frame()
            ws.registry.register("cancer", fitted("base")[0], reference=X.head(60), alias="champion")
            ws.deployments.deploy("cancer", "cancer@champion")
            assert pages.overview()["deployments"][0]["health"] == "idle"
            assert all(c["points"] == 0 for c in pages.deployment("cancer", parse_range())["charts"])
            assert "no logged values" in (pages.drift("cancer", "mean radius", parse_range())["problem"] or "")
            for path, words in [
                ("/", "no traffic in the last 15 minutes"),
                ("/deployments/cancer", "no data in this range"),
                ("/deployments/cancer/drift/mean%20radius", "no logged values"),
                ("/deployments/cancer/rollout", "never had a rollout"),
                ("/alerts", "No alert is firing"),
                ("/models/cancer", "set at registration"),
            ]:
                answer = client.get(path)
                assert answer.status_code == 200 and words in html.unescape(answer.text), path
            assert client.get("/deployments/cancer/rollout/promote").status_code == 404  # nothing to promote
    finally:
        ws.close()


def test_a_feature_whose_name_holds_a_slash_has_its_drill_down(tmp_path: Path) -> None:
    """The page links to ``ratio%2Ftotal``; the route takes the rest of the path as the name (it was a 404)."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"ratio/total": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (X["b"] > 0).astype(int)
    ws = Workspace(Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'matchday.db'}"))
    try:
        ws.registry.register("slashes", LogisticRegression().fit(X, y), reference=X.assign(y=y), target="y")
        ws.deployments.deploy("slashes", "slashes:1")
        app = FastAPI()
        pages = DashboardPages.from_workspace(ws)
        mount_dashboard(app, lambda: pages, lambda: ws.access)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            answer = client.get("/deployments/slashes/drift/ratio%2Ftotal")
            assert answer.status_code == 200 and "ratio/total" in html.unescape(answer.text), answer.text[:500]
    finally:
        ws.close()
