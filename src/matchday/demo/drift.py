"""The drift part of the demo: served traffic against the model's reference profile, a shifted
batch that drifts, as tables and an HTML report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console

from matchday.cli import render
from matchday.demo.fraud import transactions
from matchday.monitoring import (
    DriftReport,
    compare_to_profile,
    prediction_drift,
    render_html,
)
from matchday.workspace import Workspace


def drift_table(console: Console, title: str, report: DriftReport) -> None:
    """The report as `matchday drift` prints it."""
    console.print(render.drift_table(report, title))
    console.print(render.drift_verdict(report))


@dataclass(frozen=True)
class Outcome:
    """The columns that drifted in served traffic and in the shifted batch."""

    served_drifted: list[str]
    shifted_drifted: list[str]


def run(console: Console, ws: Workspace) -> Outcome:
    profile = ws.registry.get_profile("demo-fraud@champion")
    assert profile is not None
    logged = ws.prediction_log.recent("fraud", limit=5000)  # before the batch step adds its rows
    served = pa.Table.from_pylist([r.inputs for r in logged])
    served_report = compare_to_profile(profile, served)
    drift_table(
        console,
        f"served traffic ({served.num_rows:,} logged rows) vs the reference profile",
        served_report,
    )
    outputs = prediction_drift(profile, [r.prediction for r in logged])
    console.print(
        f"prediction drift (fraud share of answers): {outputs.test} {outputs.statistic:.3g}, "
        f"threshold {outputs.threshold:g}: " + ("[red]drift[/]" if outputs.drifted else "[green]ok[/]")
    )

    shifted = transactions(5000, seed=77)  # a new market: bigger amounts, more card-not-present
    shifted = shifted.set_column(0, "amount", pc.multiply(shifted["amount"], 2.5))
    rng = np.random.default_rng(7)
    shifted = shifted.set_column(4, "card_present", pa.array(rng.random(shifted.num_rows) < 0.3))
    shifted = shifted.set_column(1, "hour", pa.array(rng.choice([22, 23, 0, 1, 2, 3], shifted.num_rows)))
    report = compare_to_profile(profile, shifted.drop_columns(["is_fraud"]))
    drift_table(
        console, "a night-time batch (amounts x2.5, late hours, fewer cards present) vs the reference profile", report
    )
    reports = ws.settings.home / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    fraud_html = reports / "fraud-drift.html"
    fraud_html.write_text(render_html(report, reference_name="demo-fraud reference", current_name="shifted batch"))

    console.print(f"HTML report (opens offline): {Path(fraud_html)}")
    console.print("the same from files: matchday drift reference.parquet current.parquet --html report.html")
    return Outcome(list(served_report.drifted_columns), list(report.drifted_columns))
