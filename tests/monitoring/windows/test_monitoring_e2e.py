"""Monitoring through a real `matchday serve`: a scripted stream (fixed seed) with a data-drift point
and a concept-drift point goes through the HTTP API with its labels arriving late; the alerts fire
after each point and never before, resolve, and a webhook receiver on 127.0.0.1 gets both; the
metrics API, Prometheus gauges and the CLI show the windows; a bad monitor stops the server's start."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support.monitoring_stream import scripted_stream
from support.rollout_support import cancer_frame, fitted
from support.server_process import MATCHDAY, ServerProcess, wait_until

from matchday.workspace import Workspace

COUNT = 200
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
POSTGRES_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers 500 to the first call (so retries are exercised)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server name)
                outer.calls += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if outer.calls == 1:
                    self.send_response(500)
                else:
                    outer.bodies.append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[tuple[str, str]]:
        return [(b["event"], b["alert"]["monitor"]) for b in self.bodies]


def configure(home: Path, hook: str) -> None:
    (home / "matchday.yaml").write_text(
        yaml.safe_dump(
            {
                "monitoring": {"count_window": COUNT},
                "monitors": [
                    {
                        "name": "data-drift",
                        "metric": "drift_share",
                        "window": f"{COUNT}rows",
                        "when": "> 0.3",
                        "breaches": 2,
                        "min_rows": 150,
                        "actions": ["alert", {"webhook": hook}],
                    },
                    {
                        "name": "accuracy-low",
                        "metric": "accuracy",
                        "window": f"{COUNT}rows",
                        "when": "< 0.85",
                        "breaches": 2,
                        "min_rows": 150,
                        "severity": "critical",
                        "actions": ["alert", {"webhook": hook}],
                    },
                ],
            }
        )
    )


@SQLITE_ONLY
def test_a_scripted_stream_fires_and_resolves_alerts_through_the_server(
    workspace: Workspace, database_url: str
) -> None:
    X, _ = cancer_frame()
    workspace.registry.register("cancer", fitted("base")[0], reference=X, alias="champion")
    workspace.deployments.deploy("cancer", "cancer@champion")
    receiver = Receiver()
    configure(workspace.settings.home, receiver.url)
    stream = scripted_stream(stationary=800, drifted=800, after=1000)
    records = stream.frame.to_dict("records")
    env = {"MATCHDAY_MONITOR_INTERVAL": "0.3"}
    opened: dict[str, int] = {}
    resolved: dict[str, int] = {}
    with (
        ServerProcess(workspace.settings.home, database_url, env=env, worker=True) as server,
        httpx.Client(timeout=30) as client,
    ):
        url = server.url

        def alerts() -> list[dict[str, Any]]:
            return client.get(f"{url}/v1/alerts", params={"deployment": "cancer"}).json()["alerts"]

        pending: list[tuple[str, int]] = []
        for start in range(0, len(records), COUNT):
            for part in range(start, start + COUNT, 50):
                answer = client.post(
                    f"{url}/v1/deployments/cancer/predict",
                    json={"instances": records[part : part + 50], "ids": [f"e{i}" for i in range(part, part + 50)]},
                )
                assert answer.status_code == 200, answer.text
                pending += [(p["request_id"], i) for p, i in zip(answer.json()["predictions"], range(part, part + 50))]
            if start:  # the labels of the previous window arrive now: late, by request id
                done, pending = pending[:COUNT], pending[COUNT:]
                joined = client.post(
                    f"{url}/v1/deployments/cancer/feedback",
                    json={"labels": [{"request_id": rid, "label": int(stream.labels[i])} for rid, i in done]},
                ).json()
                assert joined["joined"] == COUNT
            # one tick sees each window: wait until the loop has summarised what was sent
            wait_until(
                lambda start=start: (
                    sum(
                        w["rows"]
                        for w in client.get(
                            f"{url}/v1/deployments/cancer/metrics", params={"window": f"{COUNT}rows"}
                        ).json()["windows"]
                    )
                    >= start + COUNT
                ),
                timeout=60,
            )
            time.sleep(0.5)  # more ticks: the labels just sent are in, the monitors have judged
            for a in alerts():
                opened.setdefault(a["monitor"], start + COUNT)
                if a["state"] == "resolved":
                    resolved.setdefault(a["monitor"], start + COUNT)
        drift_start, drift_end = stream.data_drift
        assert drift_start < opened["data-drift"] <= drift_start + 3 * COUNT, opened
        assert drift_end < resolved["data-drift"] <= drift_end + 3 * COUNT, resolved
        assert stream.concept_drift < opened["accuracy-low"] <= stream.concept_drift + 4 * COUNT, opened
        assert [a["monitor"] for a in alerts()].count("data-drift") == 1  # deduplicated: one alert, not one per window

        # the webhook receiver got the opening and the resolution (after a 500 it was retried)
        wait_until(lambda: ("alert.resolved", "data-drift") in receiver.events(), timeout=30)
        assert ("alert.opened", "data-drift") in receiver.events()
        assert ("alert.opened", "accuracy-low") in receiver.events()
        assert receiver.calls > len(receiver.bodies)

        windows = client.get(
            f"{url}/v1/deployments/cancer/metrics",
            params={"window": f"{COUNT}rows", "metric": "drift_share,accuracy,estimated_accuracy"},
        ).json()
        first = windows["windows"][0]["metrics"]
        assert set(first) == {"drift_share", "accuracy", "estimated_accuracy"}
        assert first["accuracy"] > 0.9 and first["estimated_accuracy"] > 0.9
        five = client.get(f"{url}/v1/deployments/cancer/metrics", params={"window": "5m"}).json()["windows"]
        assert sum(w["rows"] for w in five) == len(records)
        gauges = client.get(f"{url}/metrics").text
        assert (
            'matchday_window_metric{deployment="cancer",metric="error_rate",model="cancer",version="1"} 0.0' in gauges
        )
        assert (
            'matchday_feature_drift_score{deployment="cancer",feature="mean radius",model="cancer",version="1"}'
            in gauges
        )
        assert 'matchday_alerts_firing{deployment="cancer",severity="critical"} 1.0' in gauges
        monitors = client.get(f"{url}/v1/monitors", params={"deployment": "cancer"}).json()["monitors"]
        names = {m["name"]: m for m in monitors}
        assert names["accuracy-low"]["firing"] and names["accuracy-low"]["source"] == "matchday.yaml"
        assert names["error-rate"]["source"] == "default"

        # bad requests get clear errors
        bad = client.get(f"{url}/v1/deployments/cancer/metrics", params={"window": "7m"})
        assert bad.status_code == 400 and "unknown window '7m'" in bad.json()["error"]
        bad = client.get(f"{url}/v1/deployments/cancer/metrics", params={"window": "7rows"})
        assert bad.status_code == 400 and "no windows of '7rows'" in bad.json()["error"]
        bad = client.get(f"{url}/v1/deployments/cancer/metrics", params={"segment": "country=DE"})
        assert bad.status_code == 400 and "cancer is not sliced by 'country'" in bad.json()["error"]
        bad = client.get(f"{url}/v1/deployments/cancer/metrics", params={"segment": "country"})
        assert bad.status_code == 400 and "is not FEATURE=VALUE" in bad.json()["error"]
        batch = client.get(f"{url}/v1/deployments/cancer/metrics", params={"segment": "@source=batch"})
        assert batch.status_code == 200 and batch.json()["windows"] == []  # an origin: no batch rows yet, no error
        bad = client.get(f"{url}/v1/deployments/cancer/metrics", params={"metric": "colour"})
        assert bad.status_code == 400 and "unknown metric 'colour'" in bad.json()["error"]
        assert client.get(f"{url}/v1/deployments/nope/metrics").status_code == 404
        assert client.get(f"{url}/v1/alerts", params={"state": "sleeping"}).status_code == 400

        # the CLI reads the same
        cli_env = {
            "MATCHDAY_HOME": str(workspace.settings.home),
            "MATCHDAY_DATABASE_URL": database_url,
            "PATH": str(Path(MATCHDAY).parent),
            "COLUMNS": "300",
        }
        out = subprocess.run(
            [MATCHDAY, "alerts", "cancer"],
            env=cli_env,
            cwd=workspace.settings.home,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert "accuracy-low" in out.stdout and "firing" in out.stdout and "resolved" in out.stdout


@SQLITE_ONLY
def test_a_monitor_that_cannot_be_checked_stops_the_server_with_the_reason(
    workspace: Workspace, database_url: str
) -> None:
    workspace.settings.home.mkdir(parents=True, exist_ok=True)
    (workspace.settings.home / "matchday.yaml").write_text(
        yaml.safe_dump({"monitors": [{"name": "typo", "metric": "acuracy", "when": "< 0.9"}]})
    )
    with pytest.raises(RuntimeError, match="unknown metric 'acuracy'"):
        ServerProcess(workspace.settings.home, database_url).start(timeout=60)
