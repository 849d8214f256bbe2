"""`matchday metrics` and `matchday alerts` say what a newcomer needs: a window or segment no windows are
kept of is an error naming those there are (not "no windows yet"), and an alert's condition stands on its
value's scale."""

from __future__ import annotations

import io
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from support.cli_in_process import run_in_process

import matchday.workspace
from matchday.cli import render
from matchday.store import AlertRecord

AT = datetime(2026, 12, 7, 17, 21, 29, tzinfo=UTC)


def alert(value: float, data: dict[str, object], metric: str = "accuracy") -> AlertRecord:
    return AlertRecord(
        1,
        "accuracy-drop",
        "fraud",
        "demo-fraud",
        1,
        "",
        "critical",
        "firing",
        metric,
        value,
        0.9,
        "",
        AT,
        AT,
        None,
        data,
    )


def test_a_relative_alerts_condition_is_on_its_values_scale() -> None:
    relative = alert(0.692, {"condition": "< -0.05", "relative_to": "reference", "reference": 0.95})
    assert render.alert_condition(relative) == "< 0.900 (reference -0.05)"
    older = alert(0.692, {"condition": "< -0.05", "relative_to": "baseline"})  # stored without its reference
    assert render.alert_condition(older) == "< -0.05 vs baseline"
    assert render.alert_condition(alert(0.2, {"condition": "> 0.05"}, "error_rate")) == "> 0.05"
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(render.alerts_table([relative]))
    line = next(row for row in console.file.getvalue().splitlines() if "accuracy-drop" in row)  # type: ignore[attr-defined]
    assert "0.692" in line and "< 0.900 (reference -0.05)" in line and " -0.05 " not in line.replace("(reference", "")


def _forget_default_workspace() -> None:
    with matchday.workspace._lock:
        if matchday.workspace._default is not None:
            matchday.workspace._default.close()
            matchday.workspace._default = None


@pytest.fixture
def env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cancer, cancer_pipeline) -> dict[str, str]:  # type: ignore[no-untyped-def]
    import skops.io as sio

    monkeypatch.chdir(tmp_path)  # matchday.yaml is read from here
    environment = {
        **os.environ,
        "MATCHDAY_HOME": str(tmp_path),
        "MATCHDAY_DATABASE_URL": database_url,
        "COLUMNS": "200",
    }
    X, _ = cancer
    sio.dump(cancer_pipeline, tmp_path / "model.skops")
    X.to_parquet(tmp_path / "reference.parquet")
    registered = run(environment, "models", "register", "cancer", "model.skops", "--reference", "reference.parquet")
    assert registered.returncode == 0, registered.stderr
    assert run(environment, "deploy", "screening", "cancer:1").returncode == 0
    return environment


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_in_process(args, env, after=_forget_default_workspace)


def error_of(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1 and result.stderr.startswith("error:"), result.stdout + result.stderr
    return " ".join(result.stderr.split())


def test_metrics_name_the_windows_and_segments_there_are(env: dict[str, str]) -> None:
    assert "unknown window '7m'; one of 5m, 1h, 1d, 1000rows" in error_of(
        run(env, "metrics", "screening", "--window", "7m")
    )
    assert "no windows of '7rows': this server counts windows of 1000rows" in error_of(
        run(env, "metrics", "screening", "--window", "7rows")
    )
    refused = error_of(run(env, "metrics", "screening", "--segment", "country=DE"))
    assert "screening is not sliced by 'country' but by @source and @device only" in refused
    assert "monitoring.segments" in refused
    assert "is not FEATURE=VALUE" in error_of(run(env, "metrics", "screening", "--segment", "country"))
    for fine in (["--segment", "@source=batch"], ["--window", "1000rows"], []):  # kept, just empty so far
        result = run(env, "metrics", "screening", *fine)
        assert result.returncode == 0 and "yet" in result.stdout, result.stdout + result.stderr


def test_a_configured_segment_without_windows_is_not_yet_an_error(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "matchday.yaml").write_text(yaml.safe_dump({"monitoring": {"segments": {"*": ["country"]}}}))
    result = run(env, "metrics", "screening", "--segment", "country=DE")
    assert result.returncode == 0 and "no 5m windows for screening yet" in result.stdout, result.stderr
    refused = error_of(run(env, "metrics", "screening", "--segment", "merchant=m-1"))
    assert "not sliced by 'merchant' but by country and by @source, @device" in refused
