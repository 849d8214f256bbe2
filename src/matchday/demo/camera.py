"""The digits camera dims: a deployment of the digits model watched on its images' brightness (data drift
the pixels show only together), an offline drift report of the extracted features, and the alert that
fires once the dim images fill a window."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.console import Console

from matchday.client import Client
from matchday.demo.drift import drift_table
from matchday.demo.serving import running_server
from matchday.monitoring import compare_tables, image_features, render_html
from matchday.workspace import Workspace

DEPLOYMENT = "camera"
WINDOW = 500  # images per window by count, as the payments monitors count (one count window per server)
DIMMED = 0.55  # the lights go down: every pixel at 55 %


def camera_monitor() -> dict[str, Any]:
    """Brightness below the reference's by more than one grey level (of 16) is a dim camera."""
    return {
        "name": "camera-dim",
        "deployment": DEPLOYMENT,
        "metric": "image_brightness",
        "window": f"{WINDOW}rows",
        "relative_to": "reference",
        "when": "< -1.0",
        "min_rows": WINDOW // 2,
        "severity": "warning",
    }


@dataclass(frozen=True)
class Outcome:
    """What the step saw: the images sent, the features that drifted offline, the alert the loop raised."""

    sent: int
    drifted_features: list[str]
    alert: str | None
    brightness_before: float | None
    brightness_after: float | None


def run(console: Console, ws: Workspace, settings: dict[str, Any]) -> Outcome:
    """``settings``: the demo's server settings (its matchday.yaml), which watch this deployment's pixels."""
    from sklearn.datasets import load_digits

    digits = load_digits(as_frame=True)
    pixels = list(digits.feature_names)
    ws.deployments.deploy(DEPLOYMENT, "demo-digits@champion")
    console.print(
        f"$ matchday deploy {DEPLOYMENT} demo-digits@champion   (a camera at a sorting office reads handwritten "
        f"digits; monitoring.images: {{{DEPLOYMENT}: \\[pixel_*]}} makes the loop watch image_brightness)"
    )
    images = digits.data.to_numpy(dtype=float)
    half = len(images) // 2
    bright, dim = images[:half], images[half:] * DIMMED
    report = compare_tables(
        pa.table(image_features(bright.reshape(-1, 8, 8) / 16.0)),
        pa.table(image_features(dim.reshape(-1, 8, 8) / 16.0)),
        columns=["brightness", "contrast"],
    )
    drift_table(console, "the camera's images: daylight vs dusk (extracted features)", report)
    reports = ws.settings.home / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    html = reports / "camera-drift.html"
    html.write_text(render_html(report, reference_name="daylight images", current_name="dusk images"))
    console.print(f"HTML report (opens offline): {Path(html)}")
    alert = None
    with running_server(ws, monitor_interval=0.5, **settings) as url, Client(url) as client:
        sent = 0
        for story, batch in (("daylight", bright), ("dusk: the lights go down", dim)):
            console.print(f"[bold]{story}[/]: {len(batch):,} images")
            rows = [dict(zip(pixels, row, strict=True)) for row in batch.tolist()]
            for start in range(0, len(rows), 100):
                client.predict(DEPLOYMENT, rows[start : start + 100])
            sent += len(rows)
        alert = _wait_for_alert(ws, sent)
        series = ws.windows.series(DEPLOYMENT, f"{WINDOW}rows")
    levels = [float(w.metrics["image_brightness"]) for w in series if w.metrics.get("image_brightness") is not None]
    if alert is None:
        console.print("[yellow]no camera-dim alert within the wait[/]")
    if levels:
        console.print(
            f"mean pixel brightness by {WINDOW}-image window: " + ", ".join(f"{v:.2f}" for v in levels) + " (of 16)"
        )
    return Outcome(
        sent=sent,
        drifted_features=list(report.drifted_columns),
        alert=alert.message if alert is not None else None,
        brightness_before=levels[0] if levels else None,
        brightness_after=levels[-1] if levels else None,
    )


def _wait_for_alert(ws: Workspace, sent: int, timeout: float = 30.0) -> Any:
    """The loop summarises the log a tick behind the answers: wait for the camera-dim alert (or the timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fired = [a for a in ws.alerts.list(deployment=DEPLOYMENT) if a.monitor == "camera-dim"]
        if fired:
            return fired[0]
        time.sleep(0.25)
    return None
