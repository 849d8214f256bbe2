"""Input a hostile caller sends, through a real `matchday serve` on SQLite and PostgreSQL (issue 13).

A value far outside the reference range that the model cannot score (``1e308`` overflows a scaled
logistic regression) is the caller's problem, a 422 naming the field: it is not logged as the
version's failure, so it can neither fail its micro-batch neighbours nor push a healthy canary
over its error gate. A value the model copes with (``1e200``) is scored and flagged, and the
monitoring loop keeps summarising every deployment after it.

One server per database for the module (starting one takes seconds); each test registers and
deploys models under names of its own, so its versions, rollouts and log rows are its own.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from support.rollout_support import cancer_frame, fitted
from support.server_process import ServerProcess, http, wait_until

from matchday.config import Settings
from matchday.store import PredictionLogStore
from matchday.workspace import Workspace

FAST = {"MATCHDAY_CONTROLLER_INTERVAL": "0.2", "MATCHDAY_MONITOR_INTERVAL": "0.3", "MATCHDAY_SHADOW_NICE": "0"}
FEATURE = "mean smoothness"


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    X, _ = cancer_frame()
    return X.iloc[start : start + n].to_dict(orient="records")  # type: ignore[return-value]


def hostile(value: float = 1e308) -> dict[str, Any]:
    return {**rows(1)[0], FEATURE: value}


@pytest.fixture(scope="module")
def shared(store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Workspace]]:
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("hostile-home"), database_url=store_url))
    try:
        with ServerProcess(ws.settings.home, store_url, env=FAST, worker=True) as running:
            yield running, ws
    finally:
        ws.close()


@dataclass
class Deployed:
    url: str
    workspace: Workspace
    cancer: str  # the name of the model and of its deployment
    broken: str


_tests = itertools.count(1)


@pytest.fixture
def deployed(shared: tuple[ServerProcess, Workspace]) -> Deployed:
    """On the shared server, under names of the test's own: CANCER:1 and CANCER:2 (scaled logistic
    regressions, @champion on 1) deployed as CANCER; a model that fails on every input deployed as BROKEN."""
    server, workspace = shared
    n = next(_tests)
    cancer, broken = f"cancer-{n}", f"broken-{n}"
    for kind, alias in (("base", "champion"), ("better", None)):
        model, reference = fitted(kind)
        workspace.registry.register(cancer, model, reference=reference, alias=alias)
    workspace.deployments.deploy(cancer, f"{cancer}@champion")
    signature = workspace.registry.get_signature(f"{cancer}:1")
    workspace.registry.register(broken, "matchday.demo.broken:crash", signature=signature)
    workspace.deployments.deploy(broken, f"{broken}:1")
    return Deployed(server.url, workspace, cancer, broken)


def predict(url: str, instances: list[dict[str, Any]], deployment: str, **extra: Any) -> httpx.Response:
    return http.post(f"{url}/v1/deployments/{deployment}/predict", json={"instances": instances, **extra}, timeout=30)


def test_a_value_the_model_cannot_score_is_a_422_naming_the_field_and_is_not_a_version_error(
    deployed: Deployed,
) -> None:
    url, name = deployed.url, deployed.cancer
    refused = predict(url, [rows(1)[0], hostile()], name)
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["details"] == [{"field": f"instances[1].{FEATURE}", "problem": body["details"][0]["problem"]}]
    assert "far outside the reference range" in body["details"][0]["problem"]

    coped = predict(url, [hostile(1e200)], name)  # finite answers: scored, and flagged as out of range
    assert coped.status_code == 200, coped.text
    assert coped.json()["input_quality"]["by_feature"] == {FEATURE: 1}

    v2 = http.post(
        f"{url}/v2/models/{name}/infer",
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
        answers = list(pool.map(lambda i: predict(url, [hostile()] if i % 3 == 0 else rows(2, i), name), range(60)))
    assert [a.status_code for a in answers] == [422 if i % 3 == 0 else 200 for i in range(60)]

    # a model that fails on ordinary input is still the version's failure: a 500, logged
    failed = predict(url, rows(1), deployed.broken)
    assert failed.status_code == 500 and "failed to score" in failed.json()["error"]

    # answered last: once its row is in the log, so is every row answered before it (shipped in order)
    log = PredictionLogStore(deployed.workspace.database)
    wait_until(lambda: log.recent(deployed.broken, errors=None), 30, "the failure to be logged")
    cancer = log.recent(name, limit=1000, errors=None)
    assert len(cancer) == 1 + 2 * 40 and all(r.error is None for r in cancer)  # the 422s were never logged
    assert [r.error is not None for r in log.recent(deployed.broken, errors=None)] == [True]


def test_hostile_requests_cannot_roll_back_a_healthy_canary(deployed: Deployed) -> None:
    url, name = deployed.url, deployed.cancer
    started = http.post(
        f"{url}/v1/deployments/{name}/rollout",
        timeout=10,
        json={
            "candidate": f"{name}:2",
            "steps": [50, 100],
            "interval": "1s",
            "min_requests": 60,
            "gates": {"labels": "off", "latency_slack_seconds": 0.5},
        },
    )
    assert started.status_code == 201, started.text
    # the attacker finds entity keys the canary answers, then sends it rows it cannot score
    probe = predict(url, rows(40), name, ids=[f"k{i}" for i in range(40)]).json()["predictions"]
    to_canary = [p["id"] for p in probe if p["version"] == 2]
    assert to_canary
    deadline = time.monotonic() + 90
    i = 0
    while http.get(f"{url}/v1/deployments/{name}/rollout").json()["state"] == "running":
        assert time.monotonic() < deadline, http.get(f"{url}/v1/deployments/{name}/rollout").text
        attack = predict(url, [hostile()], name, ids=[to_canary[i % len(to_canary)]])
        assert attack.status_code == 422, attack.text
        assert predict(url, rows(5, i % 500), name, ids=[f"u{i}-{k}" for k in range(5)]).status_code == 200
        i += 1
    final = http.get(f"{url}/v1/deployments/{name}/rollout").json()
    assert final["state"] == "promoted", final
    assert i >= 8  # the attack ran through rounds of analysis


def test_a_canary_that_cannot_score_a_far_value_falls_back_to_a_primary_that_can(deployed: Deployed) -> None:
    """With ``fallback``, the primary's answer is the answer; the canary's failed attempt is the input's
    fault, so it is neither logged nor counted as the canary's error."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = cancer_frame()
    url, name, workspace = deployed.url, deployed.cancer, deployed.workspace
    sturdy = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y)  # binned: copes with 1e308
    workspace.registry.register(name, sturdy, reference=X.head(60))  # CANCER:3
    workspace.deployments.deploy(f"{name}-sturdy", f"{name}:3")
    started = http.post(
        f"{url}/v1/deployments/{name}-sturdy/rollout",
        timeout=10,
        json={"candidate": f"{name}:1", "steps": [50, 100], "interval": "1h", "fallback": True},
    )
    assert started.status_code == 201, started.text
    probe = predict(url, rows(40), f"{name}-sturdy", ids=[f"k{i}" for i in range(40)]).json()["predictions"]
    to_canary = [p["id"] for p in probe if p["version"] == 1]
    assert to_canary
    answer = predict(url, [hostile()], f"{name}-sturdy", ids=to_canary[:1])
    assert answer.status_code == 200, answer.text
    assert [p["version"] for p in answer.json()["predictions"]] == [3]
    store = PredictionLogStore(workspace.database)  # the writer ships rows in the order they were answered
    wait_until(lambda: store.get(answer.json()["predictions"][0]["request_id"]), 30, "the answer to be logged")
    logged = store.recent(f"{name}-sturdy", limit=1000, roles=None, errors=None)
    assert len(logged) == 41 and all(r.error is None for r in logged)


def test_monitoring_goes_on_for_every_deployment_after_a_huge_value(deployed: Deployed) -> None:
    url, name = deployed.url, deployed.cancer
    assert predict(url, [hostile(1e200)] * 3, name).status_code == 200  # scored: its square overflows a plain sum
    for i in range(5):
        assert predict(url, rows(20, i * 20), name).status_code == 200
        assert predict(url, rows(1), deployed.broken).status_code == 500

    def windows(deployment: str) -> list[dict[str, Any]]:
        answer = http.get(f"{url}/v1/deployments/{deployment}/metrics", params={"window": "5m"})
        assert answer.status_code == 200, answer.text
        return answer.json()["windows"]  # type: ignore[no-any-return]

    wait_until(lambda: sum(w["rows"] for w in windows(name)) == 103, 30, "the huge rows summarised")
    wait_until(lambda: sum(w["rows"] for w in windows(deployed.broken)) == 5, 30, "the other deployment summarised")
    assert predict(url, rows(10, 300), name).status_code == 200  # later ticks still work
    wait_until(lambda: sum(w["rows"] for w in windows(name)) == 113, 30, "a later tick")
    metrics = http.get(f"{url}/metrics").text  # and no series had to be passed over
    assert [line for line in metrics.splitlines() if line.startswith("matchday_monitoring_failures_total{")] == []
