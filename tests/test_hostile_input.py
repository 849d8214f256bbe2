"""Input a hostile caller sends, through a real `matchday serve` on SQLite and PostgreSQL (issue 13).

A value far outside the reference range that the model cannot score (``1e308`` overflows a scaled
logistic regression) is the caller's problem, a 422 naming the field: it is not logged as the
version's failure, so it can neither fail its micro-batch neighbours nor push a healthy canary
over its error gate. A value the model copes with (``1e200``) is scored and flagged, and the
monitoring loop keeps summarising every deployment after it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from rollout_support import cancer_frame, fitted
from server_process import ServerProcess, http, wait_until

from matchday.store import PredictionLogStore
from matchday.workspace import Workspace

FAST = {"MATCHDAY_CONTROLLER_INTERVAL": "0.2", "MATCHDAY_MONITOR_INTERVAL": "0.3", "MATCHDAY_SHADOW_NICE": "0"}
FEATURE = "mean smoothness"


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    X, _ = cancer_frame()
    return X.iloc[start : start + n].to_dict(orient="records")  # type: ignore[return-value]


def hostile(value: float = 1e308) -> dict[str, Any]:
    return {**rows(1)[0], FEATURE: value}


@pytest.fixture
def server(workspace: Workspace, database_url: str) -> Iterator[ServerProcess]:
    """cancer:1 and cancer:2 (scaled logistic regressions, @champion on 1) deployed as "cancer";
    a model that fails on every input deployed as "broken"."""
    for kind, alias in (("base", "champion"), ("better", None)):
        model, reference = fitted(kind)
        workspace.registry.register("cancer", model, reference=reference, alias=alias)
    workspace.deployments.deploy("cancer", "cancer@champion")
    signature = workspace.registry.get_signature("cancer:1")
    workspace.registry.register("broken", "matchday.demo.broken:crash", signature=signature)
    workspace.deployments.deploy("broken", "broken:1")
    with ServerProcess(workspace.settings.home, database_url, env=FAST, worker=True) as running:
        yield running


def predict(url: str, instances: list[dict[str, Any]], deployment: str = "cancer", **extra: Any) -> httpx.Response:
    return http.post(f"{url}/v1/deployments/{deployment}/predict", json={"instances": instances, **extra}, timeout=30)


def test_a_value_the_model_cannot_score_is_a_422_naming_the_field_and_is_not_a_version_error(
    server: ServerProcess, workspace: Workspace
) -> None:
    refused = predict(server.url, [rows(1)[0], hostile()])
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["details"] == [{"field": f"instances[1].{FEATURE}", "problem": body["details"][0]["problem"]}]
    assert "far outside the reference range" in body["details"][0]["problem"]

    coped = predict(server.url, [hostile(1e200)])  # finite answers: scored, and flagged as out of range
    assert coped.status_code == 200, coped.text
    assert coped.json()["input_quality"]["by_feature"] == {FEATURE: 1}

    v2 = http.post(
        f"{server.url}/v2/models/cancer/infer",
        timeout=30,
        json={
            "inputs": [
                {"name": name, "shape": [1], "datatype": "FP64", "data": [value]} for name, value in hostile().items()
            ]
        },
    )
    assert v2.status_code == 422 and set(v2.json()) == {"error"} and FEATURE in v2.json()["error"], v2.text

    # micro-batch neighbours of the hostile requests are answered: the model is asked again without them
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: predict(server.url, [hostile()] if i % 3 == 0 else rows(2, i)), range(60)))
    assert [a.status_code for a in answers] == [422 if i % 3 == 0 else 200 for i in range(60)]

    # a model that fails on ordinary input is still the version's failure: a 500, logged
    failed = predict(server.url, rows(1), deployment="broken")
    assert failed.status_code == 500 and "failed to score" in failed.json()["error"]

    server.stop()  # flushes the log
    log = PredictionLogStore(workspace.database)
    cancer = log.recent("cancer", limit=1000, errors=None)
    assert len(cancer) == 1 + 2 * 40 and all(r.error is None for r in cancer)  # the 422s were never logged
    assert [r.error is not None for r in log.recent("broken", errors=None)] == [True]


def test_hostile_requests_cannot_roll_back_a_healthy_canary(server: ServerProcess) -> None:
    url = server.url
    started = http.post(
        f"{url}/v1/deployments/cancer/rollout",
        timeout=10,
        json={
            "candidate": "cancer:2",
            "steps": [50, 100],
            "interval": "1s",
            "min_requests": 60,
            "gates": {"labels": "off", "latency_slack_seconds": 0.5},
        },
    )
    assert started.status_code == 201, started.text
    # the attacker finds entity keys the canary answers, then sends it rows it cannot score
    probe = predict(url, rows(40), ids=[f"k{i}" for i in range(40)]).json()["predictions"]
    to_canary = [p["id"] for p in probe if p["version"] == 2]
    assert to_canary
    deadline = time.monotonic() + 90
    i = 0
    while http.get(f"{url}/v1/deployments/cancer/rollout").json()["state"] == "running":
        assert time.monotonic() < deadline, http.get(f"{url}/v1/deployments/cancer/rollout").text
        attack = predict(url, [hostile()], ids=[to_canary[i % len(to_canary)]])
        assert attack.status_code == 422, attack.text
        assert predict(url, rows(5, i % 500), ids=[f"u{i}-{k}" for k in range(5)]).status_code == 200
        i += 1
    final = http.get(f"{url}/v1/deployments/cancer/rollout").json()
    assert final["state"] == "promoted", final
    assert i >= 8  # the attack ran through rounds of analysis


def test_a_canary_that_cannot_score_a_far_value_falls_back_to_a_primary_that_can(
    server: ServerProcess, workspace: Workspace
) -> None:
    """With ``fallback``, the primary's answer is the answer; the canary's failed attempt is the input's
    fault, so it is neither logged nor counted as the canary's error."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = cancer_frame()
    sturdy = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y)  # binned: copes with 1e308
    workspace.registry.register("cancer", sturdy, reference=X.head(60))  # cancer:3
    workspace.deployments.deploy("sturdy", "cancer:3")
    started = http.post(
        f"{server.url}/v1/deployments/sturdy/rollout",
        timeout=10,
        json={"candidate": "cancer:1", "steps": [50, 100], "interval": "1h", "fallback": True},
    )
    assert started.status_code == 201, started.text
    probe = predict(server.url, rows(40), deployment="sturdy", ids=[f"k{i}" for i in range(40)]).json()["predictions"]
    to_canary = [p["id"] for p in probe if p["version"] == 1]
    assert to_canary
    answer = predict(server.url, [hostile()], deployment="sturdy", ids=to_canary[:1])
    assert answer.status_code == 200, answer.text
    assert [p["version"] for p in answer.json()["predictions"]] == [3]
    server.stop()
    logged = PredictionLogStore(workspace.database).recent("sturdy", limit=1000, roles=None, errors=None)
    assert len(logged) == 41 and all(r.error is None for r in logged)


def test_monitoring_goes_on_for_every_deployment_after_a_huge_value(server: ServerProcess) -> None:
    url = server.url
    assert predict(url, [hostile(1e200)] * 3).status_code == 200  # scored: its square overflows a plain sum
    for i in range(5):
        assert predict(url, rows(20, i * 20)).status_code == 200
        assert predict(url, rows(1), deployment="broken").status_code == 500

    def windows(deployment: str) -> list[dict[str, Any]]:
        answer = http.get(f"{url}/v1/deployments/{deployment}/metrics", params={"window": "5m"})
        assert answer.status_code == 200, answer.text
        return answer.json()["windows"]  # type: ignore[no-any-return]

    wait_until(lambda: sum(w["rows"] for w in windows("cancer")) == 103, 30, "the huge rows summarised")
    wait_until(lambda: sum(w["rows"] for w in windows("broken")) == 5, 30, "the other deployment summarised")
    assert predict(url, rows(10, 300)).status_code == 200  # later ticks still work
    wait_until(lambda: sum(w["rows"] for w in windows("cancer")) == 113, 30, "a later tick")
    metrics = http.get(f"{url}/metrics").text  # and no series had to be passed over
    assert [line for line in metrics.splitlines() if line.startswith("matchday_monitoring_failures_total{")] == []
