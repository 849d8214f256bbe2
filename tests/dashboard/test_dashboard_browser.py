"""The dashboard in headless Chromium (Debian's ``chromium``, driven by Playwright) against one real
`matchday serve` with real data: two trained models, traffic with a drifted stretch and its labels, an
alert, a canary that passed its first step; every page loads, every chart draws points, the page
refreshes itself, and a promotion is clicked through its confirmation. Any console error, failed
request or error response fails the test.

``MATCHDAY_SCREENSHOTS=docs/screenshots`` also saves the main pages as PNGs (how the README's are made).
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support.server_process import ServerProcess, wait_until

from matchday.config import Settings
from matchday.demo import transactions
from matchday.workspace import Workspace

pytestmark = pytest.mark.slow
FEATURES = ["amount", "hour", "merchant", "country", "card_present"]
COUNT = 100


def _train(iterations: int, data: Any) -> Any:
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    return make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["merchant", "country"]), remainder="passthrough"
        ),
        HistGradientBoostingClassifier(max_iter=iterations, max_depth=2, random_state=0),
    ).fit(data[FEATURES], data["is_fraud"])


@dataclass
class Stage:
    url: str
    workspace: Workspace
    sent: int = 0
    notes: dict[str, Any] = field(default_factory=dict)


def _send(client: httpx.Client, table: Any, prefix: str) -> int:
    """Predictions in requests of 50 rows, each followed by its labels."""
    rows = table.drop_columns(["is_fraud"]).to_pylist()
    truth = table["is_fraud"].to_pylist()
    for i in range(0, len(rows), 50):
        answer = client.post(
            "/v1/deployments/payments/predict",
            json={"instances": rows[i : i + 50], "ids": [f"{prefix}{i + k}" for k in range(50)]},
        )
        assert answer.status_code == 200, answer.text
        labels = [
            {"request_id": p["request_id"], "label": truth[i + k]} for k, p in enumerate(answer.json()["predictions"])
        ]
        assert client.post("/v1/deployments/payments/feedback", json={"labels": labels}).status_code == 200
    return len(rows)


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    """One server; fraud:1 serves 700 rows (200 of them drifted), then a canary of fraud:2 passes its
    first step and is paused there, so the test can promote it."""
    home = tmp_path_factory.mktemp("dashboard-browser")
    database = f"sqlite:///{home / 'matchday.db'}"
    (home / "matchday.yaml").write_text(
        yaml.safe_dump(
            {
                "monitoring": {"count_window": COUNT},
                "monitors": [
                    {
                        "name": "inputs-drifted",
                        "metric": "drift_share",
                        "window": f"{COUNT}rows",
                        "when": ">= 0.3",
                        "min_rows": 50,
                        "deployment": "payments",
                    }
                ],
            }
        )
    )
    ws = Workspace(Settings(home=home, database_url=database))
    data = transactions(3000, seed=3).to_pandas()
    registry = ws.registry
    registry.register(
        "fraud",
        _train(2, data),
        reference=data.head(1500),
        target="is_fraud",
        alias="champion",
        metrics={"accuracy": 0.9},
        description="two boosting rounds",
    )
    registry.register(
        "fraud",
        _train(40, data),
        reference=data.head(1500),
        target="is_fraud",
        metrics={"accuracy": 0.95},
        description="forty boosting rounds",
    )
    ws.deployments.deploy("payments", "fraud@champion")
    env = {"MATCHDAY_MONITOR_INTERVAL": "0.3", "MATCHDAY_CONTROLLER_INTERVAL": "0.2"}
    server = ServerProcess(home, database, env=env, worker=True).start()
    stage = Stage(server.url, ws)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            stage.sent += _send(client, transactions(300, seed=11), "a")
            stage.sent += _send(client, transactions(200, seed=12, amount_scale=3.0, abroad=0.5), "b")
            # the drift is judged on the latest rows the loop has seen: let it see these before normal rows
            # follow (one tick over all of them on a busy machine would judge only the normal ones)
            wait_until(
                lambda: any(
                    a["monitor"] == "inputs-drifted"
                    for a in client.get("/v1/alerts", params={"deployment": "payments"}).json()["alerts"]
                ),
                60,
                "the drift alert",
            )
            stage.sent += _send(client, transactions(200, seed=13), "c")
            started = client.post(
                "/v1/deployments/payments/rollout",
                json={
                    "candidate": "fraud:2",
                    "steps": [20, 50, 80, 100],
                    "interval": "1s",
                    "min_requests": 20,
                    "gates": {"labels": "required", "min_labels": 20, "latency_slack_seconds": 0.5},
                },
            )
            assert started.status_code == 201, started.text
            offset = 0

            def first_step_passed() -> bool:
                nonlocal offset
                stage.sent += _send(client, transactions(100, seed=100 + offset), f"d{offset}-")
                offset += 1
                state = client.get("/v1/deployments/payments/rollout").json()
                assert state["state"] == "running", state
                return state["step"] >= 1

            wait_until(first_step_passed, 90, "the canary's first step to pass")
            assert (
                client.post(
                    "/v1/deployments/payments/rollout/pause", json={"reason": "held for the dashboard test"}
                ).status_code
                == 200
            )
            wait_until(
                lambda: (
                    sum(
                        w["rows"]
                        for w in client.get(
                            "/v1/deployments/payments/metrics", params={"window": f"{COUNT}rows", "limit": 1000}
                        ).json()["windows"]
                    )
                    >= stage.sent
                ),
                60,
                "the monitoring loop to summarise every row",
            )
        yield stage
    finally:
        server.stop()
        ws.close()


class Watched:
    """A page whose console errors, uncaught exceptions, failed requests and error responses are kept."""

    def __init__(self, browser: Any, timezone: str | None = None) -> None:
        # a browser elsewhere than UTC, with a 12-hour locale: the pages still say UTC on a 24-hour clock
        self.context = browser.new_context(
            viewport={"width": 1400, "height": 1000}, timezone_id=timezone or "UTC", locale="en-US"
        )
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on(
            "requestfailed",
            lambda r: (
                (r.failure or "") != "net::ERR_ABORTED" and self.problems.append(f"request failed: {r.url} {r.failure}")
            ),
        )
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(f"{r.status}: {r.url}"))

    def open(self, url: str) -> Any:
        answer = self.page.goto(url)
        assert answer is not None and answer.status == 200, url
        self.page.wait_for_function("[...document.querySelectorAll('.chart')].every(c => c.dataset.rendered)")
        return self.page

    def charts(self) -> dict[str, int]:
        """Each drawn chart's id and the points uPlot was given (its canvas must be there too)."""
        return self.page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.chart')].map(c =>
            [c.id, c.querySelector('canvas') ? Number(c.dataset.points) : -1]))""")


def _shoot(page: Any, name: str) -> None:
    folder = os.environ.get("MATCHDAY_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_every_page_in_a_browser_and_a_promotion_clicked_through(stage: Stage, browser: Any) -> None:
    w = Watched(browser)
    base = stage.url
    page = w.open(f"{base}/?refresh=0")
    row = page.locator("tr[data-deployment=payments]")
    assert "fraud:1" in row.inner_text() and "fraud:2" in row.inner_text() and "paused" in row.inner_text()
    _shoot(page, "overview")

    page = w.open(f"{base}/deployments/payments?refresh=0")
    charts = w.charts()
    assert set(charts) == {f"chart-{c}" for c in ("throughput", "latency", "errors", "outputs", "performance", "drift")}
    assert all(points > 0 for points in charts.values()), charts
    assert page.locator(".empty").count() == 0
    assert int(page.locator("#heatmap").get_attribute("data-points") or 0) > 0
    assert page.locator("#heatmap td.drifted").count() > 0 and page.locator("#heatmap td.stable").count() > 0
    assert page.locator("#events").inner_text().count("alert: inputs-drifted") >= 1
    _shoot(page, "deployment")

    for feature in ("amount", "merchant"):  # a number (bins) and a category (bars)
        page = w.open(f"{base}/deployments/payments/drift/{feature}?refresh=0")
        charts = w.charts()
        assert set(charts) == {"chart-histogram", "chart-score"} and all(p > 0 for p in charts.values()), charts
        verdict = page.locator("#verdict").inner_text()
        assert "test" in verdict and "threshold" in verdict and "statistic" in verdict
        if feature == "amount":
            _shoot(page, "drift")

    for path, selector in [("/models", "#models"), ("/models/fraud", "#aliases"), ("/alerts", "#firing, #resolved")]:
        page = w.open(f"{base}{path}?refresh=0")
        assert page.locator(selector).count() >= 1, path
        if path == "/alerts":
            assert "inputs-drifted" in page.inner_text("main") and "drift_share >= 0.3" in page.inner_text("main")
            _shoot(page, "alerts")

    page = w.open(f"{base}/deployments/payments?refresh=1")  # the page refreshes its content in place
    page.wait_for_function("Number(document.body.dataset.refreshed || 0) >= 1", timeout=15_000)
    page.wait_for_function("[...document.querySelectorAll('.chart')].every(c => c.dataset.rendered)")
    assert len(w.charts()) == 6 and all(p > 0 for p in w.charts().values())
    wide = page.evaluate("document.querySelector('#chart-latency canvas').width")
    page.set_viewport_size({"width": 600, "height": 1000})  # one column of narrower panels: charts redraw
    page.wait_for_function(f"document.querySelector('#chart-latency canvas').width < {wide}")
    assert all(p > 0 for p in w.charts().values())

    page = w.open(f"{base}/deployments/payments/rollout?refresh=0")
    assert page.locator("#rollout").get_attribute("data-state") == "paused"
    assert page.locator("#plan-steps li").all_inner_texts()[-1] == "100%: promoted"  # the plan in words
    assert "{" not in page.inner_text("#plan") and page.locator("#plan-gates li").count() == 5
    assert page.inner_text("#action-rollback") == "Roll back"
    assert page.locator("#steps tr[data-step='0']").inner_text().count("pass") >= 1  # its gates, with numbers
    _shoot(page, "rollout")
    page.click("#action-promote")
    page.wait_for_selector("#confirm-form")
    assert "fraud:2 becomes the version payments serves" in page.inner_text("main")
    page.fill("input[name=reason]", "clicked in the browser test")
    page.click("#confirm")
    page.wait_for_selector("#done")
    assert page.locator("#rollout").get_attribute("data-state") == "promoted"
    assert "promoted" in page.inner_text("#done")
    status = httpx.get(f"{base}/v1/deployments/payments/rollout", timeout=10).json()
    assert status["state"] == "promoted" and status["events"][0]["actor"].startswith("dashboard:")
    assert stage.workspace.registry.resolve("fraud@champion").version == 2
    assert w.problems == [], w.problems
    w.context.close()

    for path, status_code, words in [
        ("/deployments/nope", 404, "no deployment 'nope'"),
        ("/deployments/payments/drift/nothing", 404, "no input feature 'nothing'"),
        ("/models/nope", 404, "no model 'nope'"),
        ("/deployments/payments?since=soon", 400, "is not a time"),
    ]:
        answer = httpx.get(f"{base}{path}", timeout=10)
        assert answer.status_code == status_code and words in html.unescape(answer.text), path


def _time_ticks(page: Any) -> dict[str, list[tuple[float, str]]]:
    """Each time chart's x-axis ticks as uPlot drew them: (seconds, label)."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.chart')]
        .filter(c => JSON.parse(c.dataset.chart).kind === 'time')
        .map(c => [c.id, c._plot.axes[0]._splits.map((s, i) => [s, c._plot.axes[0]._values[i]])]))""")


def test_charts_read_in_utc_with_marks_under_the_axis_and_the_reference_s_quantile_bins(
    stage: Stage, browser: Any
) -> None:
    """From a browser in New York: time ticks on a 24-hour UTC clock; the error rate on a percent axis
    of at most 100%; every alert and rollout event a marker under the time axis (close ones grouped,
    none overlapping), its tooltip saying what happened; the drift histogram in the reference's quantile
    bins, with the values at the bins' edges."""
    from datetime import UTC, datetime

    w = Watched(browser, timezone="America/New_York")
    page = w.open(f"{stage.url}/deployments/payments?refresh=0&range=24h")
    ticks = _time_ticks(page)
    assert len(ticks) == 6 and all(ticks.values()), ticks
    for chart, marks in ticks.items():
        for at, label in marks:
            assert "am" not in label.lower() and "pm" not in label.lower(), (chart, label)
            when = datetime.fromtimestamp(at, UTC)
            said = {when.strftime(shape) for shape in ("%H:%M", "%H:%M:%S", "%m-%d", "%b", "%Y", "%Y-%m-%d")}
            said.add(when.strftime(":%S.") + f"{round(when.microsecond / 1000) % 1000:03d}")  # ticks under a second
            # each line of a tick (its time, and below the first one or a new day's the date) is of UTC's clock
            assert all(word in said for line in label.split("\n") for word in line.split()), (chart, label)

    errors = page.evaluate("""() => { const p = document.getElementById('chart-errors')._plot;
        return {labels: p.axes[1]._values, top: p.scales.y.max}; }""")
    assert all(v.endswith("%") for v in errors["labels"]) and 0 < errors["top"] <= 1, errors

    listed = page.locator("#events tbody tr").count()
    for chart in ("chart-errors", "chart-throughput"):
        markers = page.locator(f"#{chart} .mark")
        counts = [int(m.get_attribute("data-count") or 0) for m in markers.all()]
        assert sum(counts) == int(page.locator(f"#{chart}").get_attribute("data-marks") or 0) == listed, chart
        boxes = sorted((b["x"], b["x"] + b["width"]) for b in (m.bounding_box() for m in markers.all()) if b)
        assert all(right <= left for (_, right), (left, _) in zip(boxes, boxes[1:])), boxes  # never piled up
    first = page.locator("#chart-errors .mark").first
    first.hover()
    tip = page.locator("#chart-errors .mark-tip")
    tip.wait_for(state="visible")
    said = tip.inner_text()
    assert "UTC" in said and ("alert: inputs-drifted" in said or "rollout started" in said), said
    assert page.locator("#chart-errors-key").inner_text().count("alert opened") == 1

    page = w.open(f"{stage.url}/deployments/payments/drift/amount?refresh=0")
    spec = page.evaluate("JSON.parse(document.getElementById('chart-histogram').dataset.chart)")
    reference = spec["series"][0]["values"][:-1]
    assert spec["kind"] == "quantiles" and len(spec["edges"]) == len(reference) + 1
    assert max(reference) - min(reference) < 0.02, reference  # equal-width bins had most of it in two
    labels = page.evaluate("document.getElementById('chart-histogram')._plot.axes[0]._values")
    assert labels and all(label.replace(",", "").replace(".", "").replace("-", "").isdigit() for label in labels)
    assert w.problems == [], w.problems
    w.context.close()
