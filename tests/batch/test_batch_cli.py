"""`matchday batch score` as a user runs it: a job killed in the middle (SIGKILL, no goodbye) and
resumed scores and logs each row exactly once; errors are one clear line and a non-zero exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import numpy as np
import pyarrow.parquet as pq
import pytest
from support.batch_support import frame, register, slow, write_parts
from support.cli_in_process import run_in_process

import matchday.workspace
from matchday.batch import read_manifest
from matchday.config import Settings
from matchday.workspace import Workspace

TESTS = Path(__file__).parents[1]


def _matchday(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from matchday.cli import main; main()", *args],
        env={**env, "COLUMNS": "400"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_a_killed_job_resumed_scores_and_logs_each_row_exactly_once(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'md.db'}")
    ws = Workspace(settings)
    register(ws, "rule", "support.batch_support:slow")
    ws.deployments.deploy("nightly", "rule:1")
    rows = [frame(100, seed=i, start=100 * i) for i in range(30)]
    source = write_parts(tmp_path / "in", rows)
    out = tmp_path / "out"
    env = {
        **os.environ,
        "MATCHDAY_HOME": str(settings.home),
        "MATCHDAY_DATABASE_URL": settings.database_url,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    args = ["batch", "score", "rule:1", str(source), str(out), "--id-column", "key", "--batch-size", "50"]
    args += ["--deployment", "nightly"]
    job = _matchday(env, *args)
    fs = fsspec.filesystem("file")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        manifest = read_manifest(fs, str(out)) if (out / "_manifest.json").exists() else None
        if manifest is not None and len(manifest.parts) >= 5:
            break
        assert job.poll() is None, job.communicate()
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait(10)
    killed = read_manifest(fs, str(out))
    assert killed is not None and killed.state == "running" and 5 <= len(killed.parts) < 30

    # the rest in this process: no interpreter start-up to pay again
    local_env = {k: env[k] for k in ("MATCHDAY_HOME", "MATCHDAY_DATABASE_URL")} | {"COLUMNS": "400"}
    again = run_in_process(args, local_env, after=_forget_default_workspace)
    assert again.returncode == 1 and "use --resume to finish it" in again.stderr and "Traceback" not in again.stderr

    resumed = run_in_process([*args, "--resume"], local_env, after=_forget_default_workspace)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming job {killed.job_id}" in resumed.stderr and "rows/s" in resumed.stderr
    assert "done: job" in resumed.stdout and "were done" in resumed.stdout

    everything = frame(3000)
    table = pq.read_table(out).to_pandas()
    assert len(table) == 3000 and table["key"].is_unique  # each row exactly once
    expected = np.concatenate([slow(r) for r in rows])
    np.testing.assert_array_equal(table.set_index("key").loc[everything["key"], "prediction"].to_numpy(), expected)
    assert set(table["job_id"]) == {killed.job_id}

    ids = ws.prediction_log.request_ids("nightly")
    assert len(ids) == 3000 and len(set(ids)) == 3000  # logged once each, the redone part's rows included
    final = read_manifest(fs, str(out))
    assert final is not None and final.state == "done" and final.rows_done == 3000
    ws.close()


def _forget_default_workspace() -> None:
    with matchday.workspace._lock:
        if matchday.workspace._default is not None:
            matchday.workspace._default.close()
            matchday.workspace._default = None


def test_errors_are_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'md.db'}")
    ws = Workspace(settings)
    register(ws)
    rows = frame(1200)
    rows.loc[:100, "f0"] = np.nan
    source = write_parts(tmp_path / "in", [rows])
    ws.close()
    env = {"MATCHDAY_HOME": str(settings.home), "MATCHDAY_DATABASE_URL": settings.database_url, "COLUMNS": "400"}

    def run(*args: str) -> tuple[int, str]:
        done = run_in_process(["batch", "score", *args], env, after=_forget_default_workspace)
        return done.returncode, done.stderr

    code, stderr = run("nope:1", str(source), str(tmp_path / "o1"))
    assert code == 1 and stderr.startswith("error:") and "nope" in stderr and "Traceback" not in stderr
    code, stderr = run("clf:1", str(tmp_path / "missing.parquet"), str(tmp_path / "o2"))
    assert code == 1 and "no such file or folder" in stderr
    code, stderr = run("clf:1", str(source), str(tmp_path / "o3"), "--engine", "spark")
    assert code == 1 and "--engine must be local or ray" in stderr
    code, stderr = run("clf:1", str(source), str(tmp_path / "o4"))
    assert code == 1 and "101 of 1200 rows rejected" in stderr and "--max-reject-rate" in stderr
    manifest = read_manifest(fsspec.filesystem("file"), str(tmp_path / "o4"))
    assert manifest is not None and manifest.state == "stopped"
    code, stderr = run("clf:1", str(source), str(tmp_path / "o5"), "--max-reject-rate", "0.1")
    assert code == 0 and "101 rejected" in stderr
