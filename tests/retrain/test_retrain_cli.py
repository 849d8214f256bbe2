"""`matchday retrain` (policy, list, show, run, approve, cancel, simulate), `matchday worker --engine` and the
lineage in `matchday models show`, on both databases; and a bad policy in matchday.yaml stopping `matchday
serve` and `matchday worker` at start, naming the field."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from support.cli_in_process import run_in_process
from support.retrain_support import log_labelled
from support.retrain_surface_support import policy, set_up, write_config
from support.server_process import MATCHDAY, free_port

import matchday.workspace
from matchday.config import load_settings
from matchday.workspace import Workspace

TESTS = Path(__file__).parents[1]


def _forget_default_workspace() -> None:
    with matchday.workspace._lock:
        if matchday.workspace._default is not None:
            matchday.workspace._default.close()
            matchday.workspace._default = None


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`matchday ARGS` in this process, the next call opening the database afresh as a new process does."""
    return run_in_process(args, env, after=_forget_default_workspace)


def expect_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stderr.startswith("error:"), result.stderr
    assert message in " ".join(result.stderr.split()), result.stderr


def base_env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MATCHDAY_HOME": str(home),
        "PYTHONPATH": str(TESTS),
        "COLUMNS": "200",
        # named, so the runner's isolation restores them after a `worker --engine` sets them for "its process"
        "MATCHDAY_RETRAIN_ENGINE": "",
        "MATCHDAY_RAY_ADDRESS": "",
    }


@pytest.fixture
def env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # matchday.yaml is read from the working directory
    write_config(tmp_path, policy())
    return {**base_env(tmp_path), "MATCHDAY_DATABASE_URL": database_url}


@pytest.fixture
def ws(env: dict[str, str], tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(load_settings(env, tmp_path / "matchday.yaml"))
    set_up(workspace)
    yield workspace
    workspace.close()


def test_policy_run_list_show_cancel_and_their_errors(env: dict[str, str], ws: Workspace) -> None:
    shown = run(env, "retrain", "policy", "cancer")
    assert shown.returncode == 0, shown.stderr
    effective = yaml.safe_load(shown.stdout)["retrain"][0]
    assert effective["trainer"] == "support.retrain_support:train" and effective["triggers"]["schedule"] == 21600.0
    assert effective["guards"]["cooldown"] == 21600.0 and effective["accept"]["confidence"] == 0.95  # the defaults
    as_json = json.loads(run(env, "retrain", "policy", "cancer", "--json").stdout)
    assert as_json == {"deployment": "cancer", "policy": effective}
    expect_error(run(env, "retrain", "policy", "elsewhere"), "deployment 'elsewhere' has no retraining policy")

    assert "no retraining runs yet" in run(env, "retrain", "list").stdout
    started = run(env, "retrain", "run", "cancer", "--reason", "labels of the new concept arrived")
    assert started.returncode == 0, started.stderr
    assert "retraining run 1 of cancer queued from cancer:1" in started.stdout
    expect_error(run(env, "retrain", "run", "cancer"), "already has a retraining run in progress (run 1)")
    expect_error(run(env, "retrain", "approve", "1"), "run 1 is queued, not awaiting approval")

    listed = run(env, "retrain", "list", "--deployment", "cancer")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "cancer:1 -> -" in line)
    assert "queued" in row and "manual" in row
    (first,) = json.loads(run(env, "retrain", "list", "--json", "--limit", "5").stdout)["runs"]
    assert first["id"] == 1 and first["state"] == "queued" and first["actor"].startswith("cli:")
    assert first["trigger"] == {"kind": "manual", "reason": "labels of the new concept arrived"}
    assert json.loads(run(env, "retrain", "list", "--json", "--deployment", "other").stdout) == {"runs": []}

    cancelled = run(env, "retrain", "cancel", "1", "--reason", "wrong window")
    assert cancelled.returncode == 0, cancelled.stderr
    assert "retraining run 1 cancelled: cancelled by cli:" in cancelled.stdout
    expect_error(run(env, "retrain", "cancel", "1"), "run 1 has already ended (cancelled)")
    detail = run(env, "retrain", "show", "1")
    assert detail.returncode == 0, detail.stderr
    text = " ".join(detail.stdout.split())
    assert "retraining run 1 of cancer: cancelled" in text and "manual: labels of the new concept arrived" in text
    assert "retraining of cancer:1 queued: labels of the new concept arrived" in text  # the steps' trail
    assert "wrong window" in text and "finished" in text
    full = json.loads(run(env, "retrain", "show", "1", "--json").stdout)
    assert [s["state"] for s in full["steps"]] == ["queued", "cancelled"] and full["finished_at"] is not None
    expect_error(run(env, "retrain", "show", "99"), "no retraining run with id 99")
    assert run(env, "retrain", "show", "x").returncode == 2  # a usage error, not a traceback


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the CLI's output, not the store's
def test_a_trained_run_is_shown_approved_and_kept_in_the_lineage(env: dict[str, str], ws: Workspace) -> None:
    log_labelled(ws, 400)
    assert run(env, "retrain", "run", "cancer").returncode == 0
    assert [outcome for _, outcome in ws.retraining.tick()] == ["trained"]  # in a child process, as the worker does
    assert [outcome for _, outcome in ws.retraining.tick()] == ["awaiting_approval"]  # approval: before_rollout

    detail = run(env, "retrain", "show", "1")
    assert detail.returncode == 0, detail.stderr
    text = " ".join(detail.stdout.split())
    assert "retraining run 1 of cancer: awaiting_approval" in text and "candidate cancer:2" in text
    assert "data: 300 labelled production rows to train on, 100 held out, 0 reference rows" in text
    assert "labels by source: feedback 400" in text
    assert "evaluation: accepted: accuracy" in text and "on 100 held-out rows" in text
    assert "trained and registered cancer:2" in text and "waiting for an operator's approval" in text
    report = json.loads(run(env, "retrain", "show", "1", "--json").stdout)
    assert report["evaluation"]["accepted"] and report["gain"] == report["evaluation"]["gain"] > 0.2
    assert report["snapshot"]["rows"] == {"production": 300, "holdout": 100}
    listed = run(env, "retrain", "list").stdout
    assert "cancer:1 -> cancer:2" in listed and f"{report['gain']:+.4f}" in listed

    approved = run(env, "retrain", "approve", "1", "--reason", "segments checked")
    assert approved.returncode == 0, approved.stderr
    assert "retraining run 1 approved: cancer:2 goes to its rollout" in approved.stdout
    assert [outcome for _, outcome in ws.retraining.tick()] == ["rollout_started"]
    rollout = ws.retraining.get(1).rollout_id
    assert rollout is not None
    assert f"rollout {rollout}" in " ".join(run(env, "retrain", "show", "1").stdout.split())

    lineage = run(env, "models", "show", "cancer:2")
    assert lineage.returncode == 0, lineage.stderr
    chain = [line for line in lineage.stdout.splitlines() if line.startswith("│ cancer:")]
    assert "cancer:1" in chain[0] and "manual" in chain[0] and f"{report['gain']:+.4f}" in chain[0]
    assert chain[1].split("│")[2].strip() == "-"  # the champion was registered, not retrained
    links = json.loads(run(env, "models", "show", "cancer:2", "--json").stdout)["lineage_chain"]
    assert [(link["ref"], link["parent"], link["run"]) for link in links] == [
        ("cancer:2", "cancer:1", 1),
        ("cancer:1", None, None),
    ]
    assert "lineage" not in run(env, "models", "show", "cancer:1").stdout  # an original version has no chain

    cancelled = run(env, "retrain", "cancel", "1")
    assert cancelled.returncode == 0, cancelled.stderr
    assert ws.rollouts.store.get(rollout).state == "rolled_back"  # the champion keeps serving


def test_simulate_replays_the_policy_over_the_stored_windows(env: dict[str, str], ws: Workspace) -> None:
    log_labelled(ws, 200)
    result = run(env, "retrain", "simulate", "cancer", "--since", "1d")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "4 triggers, 1 would have run (windows replayed: accuracy-drop 0)" in text
    assert text.count("schedule") == 4 and "too few labels: 0 labelled rows" in text
    assert "stop_after_rejections is not replayed" in text  # the notes
    found = json.loads(run(env, "retrain", "simulate", "cancer", "--since", "1d", "--json").stdout)
    assert [t["outcome"] for t in found["triggers"]] == ["suppressed"] * 3 + ["run"]
    assert (found["triggers"][-1]["labelled_rows"], found["triggers"][-1]["holdout_rows"]) == (200, 50)
    since = (datetime.now(UTC) - timedelta(hours=13)).strftime("%Y-%m-%dT%H:%M:%S")
    window = json.loads(run(env, "retrain", "simulate", "cancer", "--since", since, "--until", "1h", "--json").stdout)
    assert len(window["triggers"]) == 2  # two schedule ticks in the 12 hours from 13 to 1 hour ago
    expect_error(run(env, "retrain", "simulate", "cancer", "--since", "soon"), "--since: 'soon' is neither")
    expect_error(run(env, "retrain", "simulate", "cancer", "--since", "1h", "--until", "2h"), "must come after")
    expect_error(run(env, "retrain", "simulate", "elsewhere"), "deployment 'elsewhere' has no retraining policy")


def test_the_worker_runs_its_trainers_on_the_engine_it_is_given(
    env: dict[str, str], ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matchday.worker

    seen: list[tuple[str, str | None, str]] = []

    def instead(workspace: Workspace) -> None:  # the worker's loops are not run: what it was given is the point
        seen.append(
            (
                workspace.settings.retrain_engine,
                workspace.settings.ray_address,
                workspace.retraining.parts.engine.name,
            )
        )

    monkeypatch.setattr(matchday.worker, "run_worker", instead)
    assert run(env, "worker").returncode == 0
    assert run(env, "worker", "--engine", "ray", "--ray-address", "ray://head:10001").returncode == 0
    assert seen == [("local", None, "local"), ("ray", "ray://head:10001", "ray")]
    assert os.environ.get("MATCHDAY_RETRAIN_ENGINE", "") == ""  # the test process is left as it was
    wrong = run(env, "worker", "--engine", "spark")
    assert wrong.returncode == 2 and "local or ray" in wrong.stderr


def test_a_bad_policy_stops_serve_and_the_worker_at_start_naming_the_field(tmp_path: Path) -> None:
    write_config(tmp_path, policy(holdout={"newest": 2}), policy("other", triggers={"monitors": ["no-such"]}))
    env = {**base_env(tmp_path), "MATCHDAY_CONFIG": str(tmp_path / "matchday.yaml")}
    worker = run_in_process(["worker"], env, after=_forget_default_workspace)
    expect_error(worker, "invalid retraining policies in matchday.yaml")
    assert "retrain cancer: holdout.newest: Input should be less than 1" in worker.stderr
    assert "retrain other: triggers.monitors: unknown monitor 'no-such'" in worker.stderr
    served = subprocess.run(  # the real script: nothing listens, nothing is started
        [MATCHDAY, "serve", "--port", str(free_port()), "--no-worker"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert served.returncode == 1, served.stdout + served.stderr
    assert "Traceback" not in served.stderr and "holdout.newest" in served.stderr
    assert "serving on" not in served.stdout
