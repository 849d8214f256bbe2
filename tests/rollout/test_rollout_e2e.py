"""Safe rollouts end to end: a real `matchday serve` on 127.0.0.1, its controller, and the database.

The controller ticks every 0.2 s here (``MATCHDAY_CONTROLLER_INTERVAL``); plans use second-long
steps and small request minimums so a whole canary runs in a few seconds. The shadow process runs at
the server's priority (``MATCHDAY_SHADOW_NICE=0``): at niceness 10, with the other test workers
keeping both cores busy, it waited for CPU (the crashing-shadow test took 39 s instead of 10 s
against two busy loops); test_shadow_worker checks the default niceness.

The tests of a `fleet` share one server per database (starting one takes seconds): each registers
and deploys a model of its own (``fleet.name``), so its versions, rollout and log rows are its own.
Tests that restart a server or start two get their own.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from support.server_process import MATCHDAY, ServerProcess, http, wait_until

from matchday.config import Settings
from matchday.demo import transactions
from matchday.rollout import RolloutError
from matchday.store import PredictionLogStore
from matchday.workspace import Workspace

FEATURES = ["amount", "hour", "merchant", "country", "card_present"]
FAST_CONTROLLER = {"MATCHDAY_CONTROLLER_INTERVAL": "0.2", "MATCHDAY_SHADOW_NICE": "0"}


def _train(iterations: int, seed: int) -> Any:
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    data = transactions(4000, seed=seed).to_pandas()
    return make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["merchant", "country"]), remainder="passthrough"
        ),
        HistGradientBoostingClassifier(max_iter=iterations, max_depth=2, random_state=0),
    ).fit(data[FEATURES], data["is_fraud"]), data


@pytest.fixture(scope="session")
def models() -> dict[str, Any]:
    """A weak champion, a better challenger (same kind of model, so the same cost), their reference."""
    weak, data = _train(2, seed=3)
    strong, _ = _train(60, seed=3)
    return {"weak": weak, "strong": strong, "reference": data.head(1500)}


@dataclass
class Fleet:
    workspace: Workspace
    server: ServerProcess
    name: str  # the test's own model and deployment

    @property
    def url(self) -> str:
        return self.server.url


def register_versions(ws: Workspace, models: dict[str, Any], name: str = "fraud") -> None:
    """NAME:1 weak (champion), NAME:2 better, NAME:3 flags everything, NAME:4 crashes; deployed as NAME."""
    registry = ws.registry
    registry.register(name, models["weak"], reference=models["reference"], target="is_fraud", alias="champion")
    registry.register(name, models["strong"], reference=models["reference"], target="is_fraud")
    signature = registry.get_signature(f"{name}:1")
    registry.register(
        name,
        "matchday.demo.broken:flag_everything",
        signature=signature,
        proba="matchday.demo.broken:flag_everything_proba",
    )
    registry.register(name, "matchday.demo.broken:crash", signature=signature)
    ws.deployments.deploy(name, f"{name}@champion")


@pytest.fixture(scope="module")
def shared_fleet(store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, ServerProcess]]:
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("fleet-home"), database_url=store_url))
    try:
        with ServerProcess(ws.settings.home, store_url, env=FAST_CONTROLLER, worker=True) as server:
            yield ws, server
    finally:
        ws.close()


_fleets = itertools.count(1)


@pytest.fixture
def fleet(shared_fleet: tuple[Workspace, ServerProcess], models: dict[str, Any]) -> Fleet:
    """The shared server, with versions 1 to 4 of a model of the test's own deployed under its name."""
    workspace, server = shared_fleet
    name = f"fraud-{next(_fleets)}"
    register_versions(workspace, models, name)
    return Fleet(workspace, server, name)


TRAFFIC = transactions(6000, seed=77)
ROWS = TRAFFIC.drop_columns(["is_fraud"]).to_pylist()
TRUTH = TRAFFIC["is_fraud"].to_pylist()


def status(url: str, deployment: str = "fraud") -> dict[str, Any]:
    answer = http.get(f"{url}/v1/deployments/{deployment}/rollout", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def start(url: str, candidate: str, deployment: str = "fraud", **plan: Any) -> dict[str, Any]:
    answer = http.post(f"{url}/v1/deployments/{deployment}/rollout", json={"candidate": candidate, **plan}, timeout=10)
    assert answer.status_code == 201, answer.text
    return answer.json()


def drive(
    urls: list[str],
    until: Callable[[], bool],
    *,
    label: bool = True,
    batch: int = 10,
    timeout: float = 90.0,
    offset: int = 0,
    deployment: str = "fraud",
) -> list[dict[str, Any]]:
    """Send traffic (and its ground truth) round-robin to ``urls`` until ``until()`` holds."""
    answers = []
    deadline = time.monotonic() + timeout
    i = offset
    with httpx.Client(timeout=30) as client:
        while time.monotonic() < deadline:
            for url in urls:
                start_at = i % (len(ROWS) - batch)
                body = {
                    "instances": ROWS[start_at : start_at + batch],
                    "ids": [f"c{start_at + k}" for k in range(batch)],
                }
                answer = client.post(f"{url}/v1/deployments/{deployment}/predict", json=body)
                assert answer.status_code == 200, answer.text
                predictions = answer.json()["predictions"]
                answers += predictions
                if label:
                    labels = [
                        {"request_id": p["request_id"], "label": TRUTH[start_at + k]} for k, p in enumerate(predictions)
                    ]
                    assert (
                        client.post(f"{url}/v1/deployments/{deployment}/feedback", json={"labels": labels}).status_code
                        == 200
                    )
                i += batch
            if until():
                return answers
        raise AssertionError(f"condition not reached in {timeout}s; rollout: {status(urls[0], deployment)}")


def kinds(state: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in reversed(state["events"])]


def test_a_worse_canary_rolls_back_by_itself_and_a_better_one_is_promoted(fleet: Fleet) -> None:
    url, name = fleet.url, fleet.name
    started = start(
        url,
        f"{name}:3",
        deployment=name,
        steps=[20, 50, 100],
        interval="1s",
        min_requests=30,
        gates={"labels": "required", "min_labels": 20},
    )
    assert started["state"] == "running" and started["weight"] == 20 and started["baseline"] == f"{name}:1"
    answers = drive([url], lambda: status(url, name)["state"] != "running", deployment=name)
    final = status(url, name)
    assert final["state"] == "rolled_back", final
    assert kinds(final) == ["started", "rolled_back"]
    rolled = final["events"][0]
    assert rolled["actor"] == "controller" and "accuracy" in rolled["reason"]
    failed = {g["name"] for g in rolled["data"]["analysis"]["gates"] if g["outcome"] == "fail"}
    assert {"accuracy", "prediction_divergence"} <= failed
    assert {a["version"] for a in answers} == {1, 3}  # the canary did answer its share before the rollback
    after = http.post(f"{url}/v1/deployments/{name}/predict", json={"instances": ROWS[:50]}).json()
    time.sleep(1.2)  # every process re-reads the plan within a second
    after = http.post(f"{url}/v1/deployments/{name}/predict", json={"instances": ROWS[:50]}).json()
    assert {p["version"] for p in after["predictions"]} == {1}
    assert fleet.workspace.registry.resolve(f"{name}@champion").version == 1

    start(
        url,
        f"{name}:2",
        deployment=name,
        steps=[20, 50, 100],
        interval="1s",
        min_requests=30,
        gates={"labels": "required", "min_labels": 60, "latency_slack_seconds": 0.5},
    )
    drive([url], lambda: status(url, name)["state"] != "running", offset=3000, deployment=name)
    final = status(url, name)
    assert final["state"] == "promoted", final["reason"]
    assert kinds(final) == ["started", "step_passed", "promoted"]
    assert all(e["actor"] == "controller" for e in final["events"][:2])
    assert fleet.workspace.registry.resolve(f"{name}@champion").version == 2
    move = fleet.workspace.registry.alias_history(name, "champion")[-1]
    assert (move.from_version, move.to_version) == (1, 2) and "rollout" in (move.reason or "")
    time.sleep(1.2)
    after = http.post(f"{url}/v1/deployments/{name}/predict", json={"instances": ROWS[:50]}).json()
    assert {p["version"] for p in after["predictions"]} == {2}


def test_a_crashing_shadow_leaves_the_primary_untouched(fleet: Fleet, models: dict[str, Any]) -> None:
    url, name = fleet.url, fleet.name
    start(url, f"{name}:4", deployment=name, strategy="shadow")
    frame = TRAFFIC.to_pandas()[FEATURES]
    expected = models["weak"].predict(frame).tolist()
    with httpx.Client(timeout=30) as client:
        for i in range(0, 400, 20):
            answer = client.post(
                f"{url}/v1/deployments/{name}/predict",
                json={"instances": ROWS[i : i + 20], "ids": [f"s{i + k}" for k in range(20)]},
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["version"] == 1
            assert [p["prediction"] for p in body["predictions"]] == expected[i : i + 20]
    report: dict[str, Any] = {}
    deadline = time.monotonic() + 120  # the shadow process runs at a low priority on a busy test machine
    while time.monotonic() < deadline:
        report = status(url, name)["report"]
        if report["requests"] >= 400:
            break
        time.sleep(0.2)
    assert report["requests"] == 400 and report["errors"] == 400 and report["error_rate"] == 1.0
    store = PredictionLogStore(fleet.workspace.database)
    assert store.count(name) == 400  # what clients got; the shadow's rows are apart
    assert store.count(name, roles=("shadow",), errors=True) == 400

    assert http.post(f"{url}/v1/deployments/{name}/rollout/rollback").json()["state"] == "rolled_back"
    start(url, f"{name}:2", deployment=name, strategy="shadow", share=50)
    drive([url], lambda: (status(url, name)["report"] or {}).get("labelled", 0) >= 40, timeout=120, deployment=name)
    report = status(url, name)["report"]
    assert report["errors"] == 0 and 0 < report["compared"] <= report["requests"]
    assert report["agreement"] is not None and 0.5 < report["agreement"] <= 1.0
    assert report["shadow_metric"] is not None and report["primary_metric"] is not None
    metrics = http.get(f"{url}/metrics").text
    assert f'matchday_shadow_predictions_total{{deployment="{name}",model="{name}",version="2"}}' in metrics


SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # same code on both; saves a server
OWN_SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # (tests with their own servers)
POSTGRES_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@SQLITE_ONLY
def test_a_canary_that_shadows_first_mirrors_then_steps_then_is_promoted(fleet: Fleet) -> None:
    """shadow_first: the candidate sees a copy of every request and answers none; judged against the
    baseline on the same requests, it then answers its first step's share; judged_only promotes it only
    on gates that were all judged (labels included)."""
    url, name = fleet.url, fleet.name
    started = start(
        url,
        f"{name}:2",
        deployment=name,
        shadow_first="2s",
        steps=[50, 100],
        interval="1s",
        min_requests=30,
        judged_only=True,
        gates={"min_labels": 40, "latency_slack_seconds": 0.5},
    )
    assert (started["phase"], started["weight"], started["plan"]["shadow_first"]) == ("shadow", 0, 2.0)
    shadowing: list[dict[str, Any]] = []

    def stepped() -> bool:
        state = status(url, name)
        if state["phase"] == "shadow":
            shadowing.append(state)
        return state["phase"] != "shadow"

    answers = drive([url], stepped, deployment=name)
    # only the baseline answered while the candidate shadowed (the last request may have met the first step)
    assert {a["version"] for a in answers[:-10]} == {1}
    report = shadowing[-1]["report"]
    assert [g["name"] for g in report["gates"]] == ["traffic", "error_rate", "prediction_divergence"]
    assert report["shadow"]["model"] == name and report["shadow"]["version"] == 2
    log = fleet.workspace.prediction_log
    wait_until(lambda: log.count(name, roles=("shadow",)) >= 30, timeout=30, what="the mirrored rows")
    mirrored = log.recent(name, 5, roles=("shadow",))
    assert {(r.version, r.role) for r in mirrored} == {(2, "shadow")}

    state = status(url, name)
    assert state["state"] == "running" and state["weight"] == 50 and state["step"] == 0
    passed = next(e for e in state["events"] if e["kind"] == "shadow_passed")
    assert passed["actor"] == "controller" and "the candidate now answers 50%" in passed["reason"]
    numbers = passed["data"]["analysis"]
    assert numbers["outcome"] == "pass" and numbers["candidate"]["requests"] >= 30
    assert numbers["baseline"]["version"] == 1 and numbers["candidate"]["version"] == 2
    assert passed["data"]["shadow"]["compared"] >= 30

    answers = drive([url], lambda: status(url, name)["state"] != "running", offset=3000, deployment=name)
    final = status(url, name)
    assert final["state"] == "promoted", final["reason"]
    assert kinds(final) == ["started", "shadow_passed", "promoted"]
    assert {g["outcome"] for g in final["events"][0]["data"]["analysis"]["gates"]} == {"pass"}  # none skipped
    assert {a["version"] for a in answers} == {1, 2}  # the step: both answered
    assert fleet.workspace.registry.resolve(f"{name}@champion").version == 2


@SQLITE_ONLY
def test_ab_split_is_sticky_per_entity_with_the_planned_share(fleet: Fleet) -> None:
    url, name = fleet.url, fleet.name
    start(url, f"{name}:2", deployment=name, strategy="ab", share=30)
    keys = [f"customer-{i}" for i in range(4000)]
    rows = [ROWS[i % len(ROWS)] for i in range(len(keys))]

    def versions() -> dict[str, int]:
        seen: dict[str, int] = {}
        with httpx.Client(timeout=30) as client:
            for i in range(0, len(keys), 200):
                body = client.post(
                    f"{url}/v1/deployments/{name}/predict",
                    json={"instances": rows[i : i + 200], "ids": keys[i : i + 200]},
                ).json()
                seen.update({p["id"]: p["version"] for p in body["predictions"]})
        return seen

    first, second = versions(), versions()
    assert first == second  # one customer, one version, every time
    share = sum(v == 2 for v in first.values()) / len(first)
    assert abs(share - 0.30) < 4 * np.sqrt(0.3 * 0.7 / len(first))
    report: dict[str, Any] = {}
    for _ in range(50):
        report = status(url, name)["report"]
        if report["baseline"]["requests"] + report["candidate"]["requests"] >= 2 * len(keys):
            break
        time.sleep(0.2)
    assert report["candidate"]["requests"] == 2 * sum(v == 2 for v in first.values())
    assert report["baseline"]["requests"] == 2 * sum(v == 1 for v in first.values())


@SQLITE_ONLY
def test_a_crashing_canary_with_fallback_never_reaches_clients(fleet: Fleet) -> None:
    url, name = fleet.url, fleet.name
    start(url, f"{name}:4", deployment=name, steps=[50, 100], interval="30s", min_requests=20, fallback=True)
    answers = drive([url], lambda: status(url, name)["state"] != "running", label=False, timeout=30, deployment=name)
    final = status(url, name)
    assert final["state"] == "rolled_back" and "error_rate" in final["reason"]  # early: before the 30 s step
    assert {a["version"] for a in answers} == {1}  # every failed row was answered by the baseline
    store = PredictionLogStore(fleet.workspace.database)
    time.sleep(0.5)
    assert store.count(name, roles=("failed_over",), errors=True) >= 20
    metrics = http.get(f"{url}/metrics").text
    assert f'matchday_fallback_rows_total{{deployment="{name}",model="{name}",version="4"}}' in metrics


@SQLITE_ONLY
def test_a_canary_that_cannot_even_load_is_answered_by_the_baseline_and_rolled_back(
    fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The candidate's code exists where it was registered, not on the server: it fails to load there."""
    (tmp_path / "only_on_the_laptop.py").write_text(
        "import numpy as np\n\ndef score(frame):\n    return np.zeros(len(frame), dtype=np.int64)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    url, name = fleet.url, fleet.name
    registry = fleet.workspace.registry
    version = registry.register(name, "only_on_the_laptop:score", signature=registry.get_signature(f"{name}:1"))
    start(url, version.ref, deployment=name, steps=[50, 100], interval="30s", min_requests=20, fallback=True)
    answers = drive([url], lambda: status(url, name)["state"] != "running", label=False, timeout=30, deployment=name)
    final = status(url, name)
    assert final["state"] == "rolled_back" and "error_rate" in final["reason"], final["reason"]
    assert {a["version"] for a in answers} == {1}
    time.sleep(0.5)
    failed = PredictionLogStore(fleet.workspace.database).recent(name, 2000, roles=("failed_over",), errors=True)
    assert failed and all("cannot be loaded" in (r.error or "") for r in failed)


@SQLITE_ONLY
def test_blue_green_switches_at_once_and_back(fleet: Fleet) -> None:
    url, name = fleet.url, fleet.name
    drive([url], lambda: True, label=False, deployment=name)  # some logged traffic to warm the new version with
    log = fleet.workspace.prediction_log  # (the log is written after the answers: wait for it)
    wait_until(lambda: log.count(name) >= 10, timeout=30, what="the traffic to be logged")
    start(url, f"{name}:2", deployment=name, strategy="bluegreen")
    deadline = time.monotonic() + 20
    while status(url, name)["phase"] != "switched" and time.monotonic() < deadline:
        time.sleep(0.2)
    state = status(url, name)
    assert state["phase"] == "switched" and state["weight"] == 100
    switched = state["events"][0]
    assert switched["kind"] == "switched" and switched["data"]["warm_rows"] > 0
    time.sleep(1.2)
    body = http.post(f"{url}/v1/deployments/{name}/predict", json={"instances": ROWS[:100]}).json()
    assert {p["version"] for p in body["predictions"]} == {2}
    assert http.get(f"{url}/v2/models/{name}").json()["versions"] == ["2"]  # what answers, not the baseline
    assert http.post(f"{url}/v1/deployments/{name}/rollout/rollback").status_code == 200
    time.sleep(1.2)
    body = http.post(f"{url}/v1/deployments/{name}/predict", json={"instances": ROWS[:100]}).json()
    assert {p["version"] for p in body["predictions"]} == {1}


@pytest.mark.slow
@OWN_SQLITE_ONLY
def test_a_restart_mid_canary_resumes_at_the_same_step(
    workspace: Workspace, models: dict[str, Any], database_url: str
) -> None:
    register_versions(workspace, models)
    server = ServerProcess(workspace.settings.home, database_url, env=FAST_CONTROLLER, worker=True).start()
    try:
        start(
            server.url,
            "fraud:2",
            steps=[10, 50, 100],
            interval="1s",
            min_requests=20,
            gates={"labels": "off", "latency_slack_seconds": 0.5},
        )
        drive([server.url], lambda: status(server.url)["step"] == 1, label=False)
    finally:
        server.stop()
    rollout = workspace.rollouts.current("fraud")
    assert (rollout.state, rollout.step, rollout.weight) == ("running", 1, 50)

    server = ServerProcess(workspace.settings.home, database_url, env=FAST_CONTROLLER, worker=True).start()
    try:
        resumed = status(server.url)
        assert (resumed["step"], resumed["weight"], resumed["id"]) == (1, 50, rollout.id)
        answers = drive([server.url], lambda: status(server.url)["state"] != "running", label=False)
        assert status(server.url)["state"] == "promoted"
        assert kinds(status(server.url)) == ["started", "step_passed", "promoted"]
        at_fifty = [a["version"] for a in answers]
        assert 2 in at_fifty and 1 in at_fifty
    finally:
        server.stop()


@pytest.mark.slow
@POSTGRES_ONLY
def test_two_servers_on_postgresql_route_by_one_plan(
    workspace: Workspace, models: dict[str, Any], database_url: str
) -> None:
    """Two servers on one database split an A/B alike; a rollback and a canary started through ``b`` are
    the plan ``a`` follows, and the one controller (``a``'s) judges the rows of both, once per step. The
    canary is judged without labels: the accuracy gate is tested on both databases by the fleet's tests,
    and here, the challenger being no more accurate on this traffic, it held a step for half a minute."""
    register_versions(workspace, models)
    home_b = Path(workspace.settings.home).parent / "replica-b"
    home_b.mkdir()
    a = ServerProcess(workspace.settings.home, database_url, env=FAST_CONTROLLER, worker=True).start()
    b = ServerProcess(
        home_b,
        database_url,  # its own spool and cache; the same database and artifacts
        env={**FAST_CONTROLLER, "MATCHDAY_ARTIFACT_URL": workspace.settings.resolved_artifact_url},
    ).start()
    try:
        start(a.url, "fraud:2", strategy="ab", share=50)
        keys = [f"k{i}" for i in range(600)]
        rows = [ROWS[i] for i in range(len(keys))]
        seen = []
        for server in (a, b):
            body = http.post(
                f"{server.url}/v1/deployments/fraud/predict", json={"instances": rows, "ids": keys}, timeout=30
            ).json()
            seen.append([p["version"] for p in body["predictions"]])
        assert seen[0] == seen[1] and 1 in seen[0] and 2 in seen[0]
        http.post(f"{b.url}/v1/deployments/fraud/rollout/rollback").raise_for_status()

        start(
            b.url,
            "fraud:2",
            steps=[20, 50, 100],
            interval="1s",
            min_requests=30,
            gates={"labels": "off", "latency_slack_seconds": 0.5},
        )
        drive([a.url, b.url], lambda: status(a.url)["state"] != "running", label=False)
        final = status(b.url)
        assert final["state"] == "promoted"
        assert kinds(final) == ["started", "step_passed", "promoted"]  # one controller decided, once per step
    finally:
        a.stop()
        b.stop()


@SQLITE_ONLY
def test_bad_rollout_requests_get_clear_errors(fleet: Fleet, store_url: str) -> None:
    url, name = fleet.url, fleet.name
    post = lambda path, **kw: http.post(f"{url}/v1/deployments/{path}", **kw)  # noqa: E731
    missing = post(f"{name}/rollout", json={"candidate": f"{name}:99"})
    assert missing.status_code == 404 and "no version 99" in missing.json()["error"]
    steps = post(f"{name}/rollout", json={"candidate": f"{name}:2", "steps": "10,50"})
    assert steps.status_code == 400 and any("100" in d for d in steps.json()["details"])
    assert post(f"{name}/rollout", json={"candidate": f"{name}:1"}).status_code == 400  # already serves it
    assert post(f"{name}/rollout", json={"candidate": f"{name}:2", "interval": "soon"}).status_code == 400
    assert post(f"{name}/rollout", json={"candidate": f"{name}:2", "colour": "blue"}).status_code == 400
    assert post(f"{name}/rollout", json={"strategy": "canary"}).status_code == 400
    assert post(f"{name}/rollout", content=b"{nope", headers={"Content-Type": "application/json"}).status_code == 400
    assert (
        post(f"{name}/rollout", content=f'{{"candidate": "{name}:2"}}'.encode()).status_code == 415
    )  # what a form can send
    assert post("nowhere/rollout", json={"candidate": f"{name}:2"}).status_code == 404
    nothing = post(f"{name}/rollout/promote")
    assert nothing.status_code == 409 and "no rollout in progress" in nothing.json()["error"]
    assert http.get(f"{url}/v1/deployments/{name}/rollout").status_code == 404  # never had one

    start(url, f"{name}:2", deployment=name, interval="1h")
    second = post(f"{name}/rollout", json={"candidate": f"{name}:3"})
    assert second.status_code == 400 and "already has a canary rollout" in second.json()["error"]
    with pytest.raises(RolloutError, match="cannot be repointed"):
        fleet.workspace.deployments.deploy(name, f"{name}:3")
    with pytest.raises(RolloutError, match="cannot be deleted"):
        fleet.workspace.deployments.delete(name)
    assert post(f"{name}/rollout/launch").status_code == 400
    assert post(f"{name}/rollout/resume").status_code == 409  # not paused
    paused = post(
        f"{name}/rollout/pause", json={"reason": "checking the dashboards"}, headers={"X-Matchday-Actor": "alice"}
    ).json()
    assert paused["state"] == "paused" and paused["events"][0]["actor"] == "alice"
    assert paused["events"][0]["reason"] == "checking the dashboards"
    assert post(f"{name}/rollout/resume").json()["state"] == "running"
    assert post(f"{name}/rollout/rollback", json={"reason": 5}).status_code == 400
    events = http.get(f"{url}/v1/deployments/{name}/events").json()["events"]
    assert [e["kind"] for e in events][:3] == ["resumed", "paused", "started"]

    env = {
        "MATCHDAY_HOME": str(fleet.workspace.settings.home),
        "MATCHDAY_DATABASE_URL": store_url,
        "PATH": str(Path(MATCHDAY).parent),
    }
    cli = subprocess.run([MATCHDAY, "rollout", "start", name, f"{name}:2"], capture_output=True, text=True, env=env)
    assert cli.returncode == 1 and "already has a canary rollout" in cli.stderr
    shown = subprocess.run([MATCHDAY, "rollout", "status", name], capture_output=True, text=True, env=env)
    assert shown.returncode == 0 and f"{name}:1 -> {name}:2" in shown.stdout and "traffic" in shown.stdout
    done = subprocess.run(
        [MATCHDAY, "rollout", "promote", name, "--reason", "looks good"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0 and "promoted" in done.stdout
    assert fleet.workspace.registry.resolve(f"{name}@champion").version == 2
