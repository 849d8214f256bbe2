"""Retraining unattended, through a real `matchday serve`, its worker and the database (SQLite and PostgreSQL).

A scripted stream: the champion right on the old concept, then the concept changes (the same inputs,
another outcome) and labels come late through the feedback API. The accuracy alert fires, a run
trains on the fresh labelled rows, is judged on the newest ones, mirrored, canaried and promoted, and
accuracy comes back. A worse candidate is rejected with the champion untouched and the cooldown held;
a worker killed while its trainer runs leaves a run the next worker finishes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from support.rollout_support import cancer_frame, fitted
from support.server_process import MATCHDAY, ServerProcess, http, wait_until

from matchday.workspace import Workspace

pytestmark = pytest.mark.slow
COUNT = 100  # rows per count window: the accuracy monitor judges every 100 labelled rows


def new_concept(frame: pd.DataFrame) -> np.ndarray:
    """After the change: the outcome follows mean texture alone (the champion learned the diagnosis)."""
    X, _ = cancer_frame()
    return (frame["mean texture"].to_numpy() > float(X["mean texture"].median())).astype(int)


def rows(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of the breast-cancer data, and their labels under the old concept (the diagnosis)."""
    X, y = cancer_frame()
    picks = np.random.default_rng(seed).integers(0, len(X), n)
    return X.iloc[picks].reset_index(drop=True), y.iloc[picks].to_numpy()


def configure(home: Path, policy: dict[str, Any]) -> None:
    (home / "matchday.yaml").write_text(
        yaml.safe_dump(
            {
                "monitoring": {"count_window": COUNT},
                "retrain": [policy],
            }
        )
    )


def policy(trainer: str = "support.retrain_support:train", **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "deployment": "cancer",
        "trainer": trainer,
        "triggers": {"monitors": ["accuracy-drop"]},
        "data": {"reference": False, "production": {"window": "1h"}},
        "holdout": {"newest": 0.25, "min_rows": 40},
        "rollout": {
            "shadow_first": "2s",
            "steps": [50, 100],
            "interval": "1s",
            "min_requests": 40,
            "deadline": "120s",
            "gates": {"min_labels": 40, "max_latency_p99_ratio": 50, "latency_slack_seconds": 0.5},
        },
        "guards": {"cooldown": "1h", "max_per_day": 3, "stop_after_rejections": 2},
    }
    base.update(over)
    return base


def setup_champion(home: Path, database_url: str) -> float:
    """Register and deploy the champion (with its labelled reference); its reference accuracy."""
    ws = Workspace(_settings(home, database_url))
    try:
        model, _ = fitted("base")
        X, y = cancer_frame()
        version = ws.registry.register("cancer", model, reference=X.assign(label=y), target="label", alias="champion")
        ws.deployments.deploy("cancer", "cancer@champion")
        profile = ws.registry.get_profile(version.ref) or {}
        sample = profile["labelled_sample"]
        return float(np.mean(np.asarray(sample["labels"]) == np.asarray(sample["predictions"])))
    finally:
        ws.close()


def labelled_after(home: Path, database_url: str, candidate: str) -> tuple[int, float]:
    """Labelled rows, and how many of them were right, in the promoted version's count windows."""
    ws = Workspace(_settings(home, database_url))
    try:
        number = int(candidate.partition(":")[2])
        after = [
            w
            for w in ws.windows.series("cancer", f"{COUNT}rows", segment="", version=number, model="cancer")
            if w.metrics.get("labelled") and w.metrics.get("accuracy") is not None
        ]
        labelled = sum(w.metrics["labelled"] for w in after)
        return labelled, sum(w.metrics["accuracy"] * w.metrics["labelled"] for w in after)
    finally:
        ws.close()


def _settings(home: Path, database_url: str) -> Any:
    from matchday.config import load_settings

    return load_settings(
        {"MATCHDAY_HOME": str(home), "MATCHDAY_DATABASE_URL": database_url}, config_file=home / "matchday.yaml"
    )


class Traffic:
    """Scores rows through the API and sends their labels ``delay`` seconds later (late: after the
    monitoring loop has summarised their rows). ``concept``: ``new`` throughout, ``old`` throughout
    (the diagnosis, which the champion learned), or ``switch`` at row ``switch_at``."""

    def __init__(self, url: str, seed: int = 11, delay: float = 0.0, concept: str = "new", switch_at: int = 0) -> None:
        self.url, self.delay = url, delay
        self.frame, old = rows(20_000, seed)
        new = new_concept(self.frame)
        if concept == "switch":
            self.truth = np.where(np.arange(len(old)) < switch_at, old, new)
        else:
            self.truth = new if concept == "new" else old
        self.sent = 0
        self.late: list[tuple[float, list[dict[str, Any]]]] = []  # (when due, labels)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def send(self, n: int) -> None:
        for start in range(self.sent, self.sent + n, 20):
            part = self.frame.iloc[start : start + 20]
            answer = http.post(
                f"{self.url}/v1/deployments/cancer/predict", json={"instances": part.to_dict("records")}, timeout=30
            )
            answer.raise_for_status()
            labels = [
                {"request_id": p["request_id"], "label": int(self.truth[i])}
                for p, i in zip(answer.json()["predictions"], range(start, start + len(part)))
            ]
            self.late.append((time.monotonic() + self.delay, labels))
            self.flush()
        self.sent += n

    def flush(self, everything: bool = False) -> None:
        while self.late and (everything or self.late[0][0] <= time.monotonic()):
            _, labels = self.late.pop(0)
            http.post(f"{self.url}/v1/deployments/cancer/feedback", json={"labels": labels}, timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.send(20)
            time.sleep(0.05)
        self.flush(everything=True)

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


def runs(url: str) -> list[dict[str, Any]]:
    """The runs, newest first, as the API answers them."""
    answer = http.get(f"{url}/v1/retrain/runs", timeout=10)
    answer.raise_for_status()
    return list(answer.json()["runs"])


class server(ServerProcess):  # noqa: N801 - used as `with server(...) as srv`
    def __init__(self, home: Path, database_url: str, **kw: Any) -> None:
        env = {"MATCHDAY_MONITOR_INTERVAL": "0.5", "MATCHDAY_CONTROLLER_INTERVAL": "0.5", **kw.pop("env", {})}
        super().__init__(home, database_url, env=env, **kw)


# PostgreSQL: the headless demo (tests/demo/test_demo_headless.py, step 9) runs the same loop, end to end, on SQLite
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_concept_drift_is_retrained_judged_rolled_out_and_promoted_unattended(
    tmp_path: Path, database_url: str
) -> None:
    configure(tmp_path, policy())
    reference_accuracy = setup_champion(tmp_path, database_url)
    with server(tmp_path, database_url, worker=True) as srv:
        traffic = Traffic(srv.url, delay=2.0).start()  # labels come 2 s after their answers
        try:
            run = wait_until(lambda: next(iter(runs(srv.url)), None), timeout=120, what="a retraining run")
            assert run["trigger"]["kind"] == "monitor" and run["trigger"]["monitor"] == "accuracy-drop"
            done = wait_until(
                lambda: next((r for r in runs(srv.url) if r["state"] in ("promoted", "rejected", "failed")), None),
                timeout=240,
                what="the run to end",
            )
            assert done["state"] == "promoted", done
            candidate = done["candidate"]
            wait_until(
                lambda: labelled_after(tmp_path, database_url, candidate)[0] >= 200,
                timeout=180,
                what="200 labelled rows of the promoted version in its windows",
            )
        finally:
            traffic.stop()
        detail = http.get(f"{srv.url}/v1/retrain/runs/{done['id']}", timeout=10).json()
    states = [s["state"] for s in detail["steps"]]
    assert states[0] == "queued" and "evaluating" in states and states[-1] == "promoted"
    assert detail["evaluation"]["accepted"] and detail["evaluation"]["gain"] > 0.2
    assert detail["snapshot"]["labels_by_source"] == {"feedback": detail["snapshot"]["log_ids"]["count"]}
    ws = Workspace(_settings(tmp_path, database_url))
    try:
        version = ws.registry.get_version(candidate)
        assert "champion" in version.aliases
        assert version.lineage is not None and version.lineage["parent"] == "cancer:1"
        assert version.lineage["trigger"]["monitor"] == "accuracy-drop"
        assert version.lineage["rollout"]["state"] == "promoted"
        rollout = ws.rollouts.store.get(detail["rollout_id"])
        kinds = [e.kind for e in ws.rollouts.list_events("cancer", limit=200) if e.rollout_id == rollout.id]
        assert "shadow_passed" in kinds and "promoted" in kinds, kinds
        analysis_gates = {g["name"]: g["outcome"] for g in (rollout.analysis or {}).get("gates", [])}
        assert analysis_gates and all(o == "pass" for o in analysis_gates.values()), analysis_gates
        # accuracy in the windows after promotion: back within 2 points of the reference
        labelled, correct = labelled_after(tmp_path, database_url, candidate)
        assert abs(correct / labelled - reference_accuracy) <= 0.02, (correct / labelled, reference_accuracy)
    finally:
        ws.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the loop on both: the first test
def test_a_worse_candidate_is_rejected_and_the_cooldown_holds_the_next_trigger(
    tmp_path: Path, database_url: str
) -> None:
    configure(  # the schedule is due at once; the run waits for the 300 labels the traffic brings
        tmp_path,
        policy(
            "support.retrain_support:train_worse",
            triggers={"schedule": "1s", "min_new_labels": 300},
            holdout={"newest": 0.25, "min_rows": 40},
        ),
    )
    setup_champion(tmp_path, database_url)
    with server(tmp_path, database_url, worker=True) as srv:
        Traffic(srv.url, concept="old").send(300)  # the champion is right: nothing to learn
        done = wait_until(
            lambda: next((r for r in runs(srv.url) if r["state"] in ("promoted", "rejected", "failed")), None),
            timeout=120,
            what="the run to end",
        )
        assert done["state"] == "rejected", done
        assert "rejected before any traffic" in done["reason"]
        ws = Workspace(_settings(tmp_path, database_url))
        try:
            held = wait_until(
                lambda: [e for e in ws.events.list("cancer", kinds=("retrain_suppressed",)) if "cooldown" in e.reason],
                timeout=30,
                what="the schedule's next trigger held by the cooldown",
            )
            assert "the schedule" in held[0].reason
            assert len(runs(srv.url)) == 1
            assert ws.registry.get_version("cancer@champion").version == 1  # untouched
            assert ws.deployments.route("cancer").primary.version == 1
            assert ws.rollouts.store.active("cancer") is None
        finally:
            ws.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # its leader lock dies with the session
def test_a_worker_killed_while_training_leaves_a_run_the_next_worker_finishes(
    tmp_path: Path, database_url: str
) -> None:
    configure(tmp_path, policy("support.retrain_support:train_slowly", triggers={"schedule": "1s"}))
    setup_champion(tmp_path, database_url)
    hold = tmp_path / "hold"
    hold.write_text("")
    env = {
        **os.environ,
        "MATCHDAY_HOME": str(tmp_path),
        "MATCHDAY_DATABASE_URL": database_url,
        "MATCHDAY_CONTROLLER_INTERVAL": "0.5",
        "MATCHDAY_TEST_HOLD": str(hold),
        "PYTHONPATH": str(Path(__file__).parents[1]),
    }
    with server(tmp_path, database_url) as srv:
        Traffic(srv.url, delay=0).send(300)

        def worker() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [MATCHDAY, "worker"], env=env, cwd=tmp_path, stdout=open(tmp_path / "worker.log", "ab"), stderr=-2
            )

        first = worker()
        try:
            wait_until(lambda: any(r["state"] == "training" for r in runs(srv.url)), timeout=60, what="a run training")
            time.sleep(1.0)  # the trainer's child is up, waiting on the hold file
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
        [run] = runs(srv.url)
        assert run["state"] == "training"
        hold.unlink()
        second = worker()
        try:
            done = wait_until(
                lambda: next((r for r in runs(srv.url) if r["state"] not in ("queued", "training")), None),
                timeout=120,
                what="the resumed run to train",
            )
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(60)
    assert done["id"] == run["id"] and done["state"] in ("evaluating", "rolling_out", "promoted", "rejected")
    ws = Workspace(_settings(tmp_path, database_url))
    try:
        assert len(ws.registry.versions_of_run("cancer", run["id"])) == 1  # trained once, registered once
    finally:
        ws.close()
