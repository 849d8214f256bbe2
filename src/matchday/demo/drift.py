"""The drift part of the demo: served traffic against the model's reference profile, a shifted
batch that drifts, and dim digit images caught on their brightness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table

from matchday.demo.fraud import transactions
from matchday.monitoring import (
    DriftReport,
    compare_tables,
    compare_to_profile,
    image_features,
    prediction_drift,
    render_html,
)
from matchday.workspace import Workspace


def _summary(console: Console, title: str, report: DriftReport) -> None:
    table = Table("column", "test", "statistic", "threshold", "drift", title=title)
    for c in report.columns.values():
        value = c.p_value if c.p_value is not None else c.statistic
        table.add_row(
            c.column, c.test, f"{value:.3g}", f"{c.threshold:g}", "[red]drift[/]" if c.drifted else "[green]ok[/]"
        )
    console.print(table)
    verdict = "[red]dataset drift[/]" if report.dataset_drift else "[green]no dataset drift[/]"
    console.print(f"{verdict}: {len(report.drifted_columns)} of {len(report.columns)} columns drifted")


def run(console: Console, ws: Workspace) -> None:
    profile = ws.registry.get_profile("demo-fraud@champion")
    assert profile is not None
    logged = ws.prediction_log.recent("fraud", limit=5000)
    served = pa.Table.from_pylist([r.inputs for r in logged])
    _summary(
        console,
        f"served traffic ({served.num_rows:,} logged rows) vs the reference profile",
        compare_to_profile(profile, served),
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
    _summary(
        console, "a night-time batch (amounts x2.5, late hours, fewer cards present) vs the reference profile", report
    )
    reports = ws.settings.home / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    fraud_html = reports / "fraud-drift.html"
    fraud_html.write_text(render_html(report, reference_name="demo-fraud reference", current_name="shifted batch"))

    from sklearn.datasets import load_digits

    images = load_digits().images / 16.0
    bright, dim = image_features(images[:900]), image_features(images[900:] * 0.55)  # dim lighting
    digits = compare_tables(pa.table(bright), pa.table(dim), columns=["brightness", "contrast"])
    _summary(console, "digit images: training light vs dim lighting (extracted features)", digits)
    digits_html = reports / "digits-drift.html"
    digits_html.write_text(render_html(digits, reference_name="training images", current_name="dim images"))
    console.print(f"HTML reports (open offline): {Path(fraud_html)} and {Path(digits_html)}")
    console.print("the same from files: matchday drift reference.parquet current.parquet --html report.html")
