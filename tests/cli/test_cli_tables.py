"""The command line's tables read well in an 80-column terminal: every line fits, no header is cut to
``versi…``, values are whole, and what had to be left out is named under the table."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from rich.console import Console, RenderableType
from support.cli_in_process import run_in_process

import matchday.workspace
from matchday.cli import render
from matchday.cli.monitoring import METRIC_COLUMNS
from matchday.cli.render import Col, FittingTable
from matchday.store import AlertRecord, AliasMove, ModelRecord, ModelVersionRecord

AT = datetime(2026, 12, 7, 17, 21, 29, tzinfo=UTC)
SHA = "e0b4c9bf786b91337d0e4d6793da1cc1a9116169728d0fc31d268b7253d49cf8"


def printed(renderable: RenderableType, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def headers_of(text: str) -> list[list[str]]:
    """Each table's column headers, a header wrapped over lines joined again."""
    tables, rows = [], None
    for line in text.splitlines():
        if line.startswith("┏"):
            rows = []
        elif line.startswith("┡") and rows is not None:
            columns = zip(*(line.strip("┃").split("┃") for line in rows), strict=True)
            tables.append([" ".join(" ".join(column).split()) for column in columns])
            rows = None
        elif rows is not None:
            rows.append(line.strip())
    return tables


def assert_readable(text: str, headers: list[str], width: int = 80) -> None:
    """Each line fits; no header is cut; each header shows whole in some table, or is named as left out."""
    assert all(len(line) <= width for line in text.splitlines()), text
    shown = headers_of(text)
    assert shown, text
    assert not any("…" in header for table in shown for header in table), text
    left_out = " ".join(line.strip() for line in text.splitlines() if "not shown at" in line)
    for header in headers:
        assert any(header in table for table in shown) or header in left_out, f"{header!r} missing:\n{text}"


def version(n: int, aliases: tuple[str, ...] = (), **fields: Any) -> ModelVersionRecord:
    inputs = [
        {"name": "mean fractal dimension", "type": "float", "nullable": False, "min": 0.04996, "max": 0.09744},
        {"name": "merchant_category", "type": "string", "nullable": True, "categories": ["grocery", "travel"]},
        {"name": "amount", "type": "float", "nullable": False, "min": 0.5, "max": 18_250.0},
    ]
    return ModelVersionRecord(
        name="demo-fraud",
        version=n,
        flavor="sklearn",
        artifact_sha256=SHA,
        artifact_size=36_560,
        flavor_options={},
        signature={"inputs": inputs, "output": {"task": "classification", "classes": [0, 1]}},
        metrics={},
        tags={},
        description=None,
        created_at=AT,
        aliases=aliases,
        **fields,
    )


def alert(id: int, deployment: str, monitor: str, metric: str, value: float, segment: str = "") -> AlertRecord:
    return AlertRecord(
        id=id,
        monitor=monitor,
        deployment=deployment,
        model="demo-fraud",
        version=1,
        segment=segment,
        severity="critical",
        state="firing" if id % 2 else "resolved",
        metric=metric,
        value=value,
        threshold=-0.05,
        message=f"{metric} {value}",
        opened_at=AT,
        last_seen_at=AT,
        resolved_at=None if id % 2 else AT,
        data={"condition": "< -0.05", "relative_to": "reference"},
    )


def test_the_registrys_tables_fit_80_columns() -> None:
    models = [
        ModelRecord("demo-fraud", None, AT, 3, {"champion": 2, "challenger": 3}),
        ModelRecord("demo-digits", None, AT, 1, {"champion": 1}),
    ]
    assert_readable(printed(render.models_table(models)), ["model", "latest", "aliases", "created (UTC)"])

    versions = [version(1), version(2, ("champion",)), version(3, ("challenger", "shadow"))]
    moves = [AliasMove("demo-fraud", "champion", 1, 2, "promoted by the controller after 3 passed steps", AT)]
    text = printed(render.model_versions("demo-fraud", versions, moves))
    assert_readable(text, ["version", "flavor", "task", "inputs", "aliases", "sha256", "created (UTC)", "reason"])
    assert "classification" in text and "@challenger, @shadow" in " ".join(text.split())
    assert "not shown at 80 columns: sha256" in text  # the least needed column goes, and says so

    lineage = [
        {
            "ref": "demo-fraud:3",
            "parent": "demo-fraud:2",
            "trigger": "monitor accuracy-drop (alert 7)",
            "run": 4,
            "gain": 0.049,
            "rollout": {"id": 12, "state": "promoted"},
            "created_at": AT.isoformat(),
        }
    ]
    profile = {"rows": 5000, "columns": {"amount": {"mean": 81.2, "std": 140.3}, "merchant_category": {"distinct": 9}}}
    text = printed(
        render.version_detail(version(3, ("champion",), lineage={"parent": "demo-fraud:2"}), profile, lineage)
    )
    assert_readable(
        text,
        ["input", "type", "nullable", "range / categories", "reference mean ± std", "parent", "trigger", "gain"],
    )
    assert "mean fractal dimension" in " ".join(text.split()) and "81.2 ± 140" in text


@pytest.mark.parametrize(
    "metrics",
    [METRIC_COLUMNS, ("rows", "drift.amount", "drift_share", "accuracy", "estimated_accuracy", "concept_drift")],
    ids=["default", "demo"],
)
def test_the_windows_table_fits_80_columns_continuing_below_itself(metrics: tuple[str, ...]) -> None:
    """Eleven columns do not fit 80: the window and version repeat in each part, every metric is shown whole."""
    windows = [
        SimpleNamespace(start=AT, version=v, metrics={m: 0.123 if m != "rows" else 500 for m in metrics})
        for v in (1, 1, 2)
    ]
    table = render.windows_table(
        "payments, 500rows windows", windows, metrics, lambda w: "data drift and falling performance", seconds=True
    )
    text = printed(table)
    assert_readable(text, ["window (UTC)", "version", *metrics, "diagnosis"])
    assert all(table[:2] == ["window (UTC)", "version"] for table in headers_of(text))
    assert "not shown" not in text  # nothing left out: the metrics are what was asked for
    assert "performance" in text and "12-07 17:21:29" in text


def test_the_alerts_table_fits_80_columns() -> None:
    one = [
        alert(1, "payments", "accuracy-drop", "accuracy", 0.692),
        alert(2, "payments", "data-drift", "drift_share", 0.4),
    ]
    text = printed(render.alerts_table(one))
    assert_readable(text, ["id", "monitor", "state", "metric", "value", "condition", "opened (UTC)"])
    assert "alerts of payments" in text and "deployment" not in headers_of(text)[0]
    both = [*one, alert(3, "checkout", "error-rate", "error_rate", 0.07, segment="country=DE")]
    text = printed(render.alerts_table(both))
    assert_readable(text, ["id", "deployment", "monitor", "state", "metric", "value", "condition"])
    assert "checkout [country=DE]" in text  # a segment is text, not markup


def test_the_rollout_status_fits_80_columns() -> None:
    arm = {
        "model": "demo-fraud",
        "version": 1,
        "requests": 240,
        "error_rate": 0.0,
        "latency_p50_seconds": 0.0012,
        "latency_p99_seconds": 0.0051,
        "labelled": 180,
        "metric": "accuracy",
        "metric_value": 0.91,
    }
    status = SimpleNamespace(
        rollout=SimpleNamespace(
            id=3,
            deployment="fraud",
            strategy="canary",
            baseline="demo-fraud:1",
            candidate="demo-fraud:2",
            step=1,
            phase="step",
            state="running",
            weight=50.0,
            failures=0,
            reason=None,
        ),
        plan=SimpleNamespace(steps=[20, 50, 100], shadow_first=None, failure_limit=0),
        report={"baseline": arm, "candidate": {**arm, "version": 2}},
        events=[
            SimpleNamespace(
                at=AT,
                kind="step_passed",
                actor="controller",
                reason="step 1 of 3 (20%) passed its analysis; the candidate now answers 50%",
            )
        ],
    )
    text = printed(render.rollout_status(status))
    assert_readable(text, ["version", "rows", "error rate", "p50 ms", "p99 ms", "labelled", "accuracy", "reason"])


def test_a_fitting_table_is_the_plain_rich_table_when_it_fits() -> None:
    wide = FittingTable("model", Col("aliases", wrap=True), Col("created (UTC)", fold=1))
    wide.add_row("demo-fraud", "@champion→2", "2026-12-07 17:21")
    from rich.table import Table

    plain = Table("model", "aliases", "created (UTC)")
    plain.add_row("demo-fraud", "@champion→2", "2026-12-07 17:21")
    assert printed(wide, 200) == printed(plain, 200)


def test_a_fitting_table_leaves_out_the_highest_fold_first_and_wraps_free_text() -> None:
    table = FittingTable(
        Col("id", key=True), Col("reason", wrap=True), Col("by", fold=1), Col("sha256", fold=2), title="runs"
    )
    table.add_row("1", "the candidate answered worse on every segment it was judged on", "cli:root", SHA[:12])
    assert "not shown at 40 columns: sha256" in printed(table, 40)  # the highest fold goes first
    text = printed(table, 26)
    assert "not shown at 26 columns: by, sha256" in " ".join(text.split())
    assert "every segment it was judged on" in " ".join(text.replace("│", " ").split())
    assert all(len(line) <= 26 for line in text.splitlines())
    assert "not shown" not in printed(table, 80)


@pytest.mark.slow
def test_the_commands_read_well_at_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cancer: tuple[pd.DataFrame, pd.Series], cancer_pipeline: Any
) -> None:
    """`COLUMNS=80 matchday ...` as a newcomer's terminal runs it, through the console script's entry point."""
    import skops.io as sio

    X, y = cancer
    sio.dump(cancer_pipeline, tmp_path / "model.skops")
    X.assign(target=y).to_parquet(tmp_path / "reference.parquet")
    X.to_parquet(tmp_path / "inputs.parquet")
    X.iloc[:200].assign(**{"mean radius": X["mean radius"].iloc[:200] * 1.5}).to_parquet(tmp_path / "current.parquet")
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "MATCHDAY_HOME": str(tmp_path), "COLUMNS": "80"}
    env.pop("MATCHDAY_DATABASE_URL", None)

    def run(*args: str) -> str:
        done = run_in_process(args, env, after=_forget_default_workspace)
        assert done.returncode in (0, 3), done.stdout + done.stderr  # 3: `drift` found drift
        return done.stdout

    for alias in ("champion", "challenger"):
        run(
            "models",
            "register",
            "cancer",
            "model.skops",
            "--reference",
            "reference.parquet",
            "--target",
            "target",
            "--alias",
            alias,
        )
    run("deploy", "screening", "cancer@champion")

    assert_readable(run("models", "list"), ["model", "latest", "aliases", "created (UTC)"])
    text = run("models", "show", "cancer")
    assert_readable(text, ["version", "flavor", "task", "inputs", "aliases", "sha256", "created (UTC)", "reason"])
    assert "classification" in text
    text = run("models", "show", "cancer:1")
    assert_readable(text, ["input", "type", "nullable", "range / categories", "reference mean ± std"])
    assert_readable(run("deployments", "list"), ["deployment", "serves", "version now", "max batch", "updated (UTC)"])
    text = run("monitors", "screening")
    assert_readable(text, ["monitor", "state", "metric", "window", "condition", "severity", "from"])
    assert "prediction_drift_detected" in text and "concept_drift" in text and "monitors of screening" in text
    text = run("drift", "inputs.parquet", "current.parquet")
    assert_readable(text, ["column", "test", "statistic", "p-value", "threshold", "drift", "missing"])
    assert "…" not in text and "mean radius" in text
    assert_readable(run("events"), ["at (UTC)", "deployment", "kind", "actor", "reason"])


def _forget_default_workspace() -> None:
    with matchday.workspace._lock:
        if matchday.workspace._default is not None:
            matchday.workspace._default.close()
            matchday.workspace._default = None
