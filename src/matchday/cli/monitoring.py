"""``matchday metrics``, ``monitors`` and ``alerts``: what the monitoring loop has summarised and judged, read
from the store (the server's worker writes it)."""

from __future__ import annotations

from typing import Annotated

import typer

from matchday.cli import render
from matchday.cli.context import default_workspace
from matchday.cli.options import FLAG, JsonFlag
from matchday.cli.render import Col, FittingTable
from matchday.errors import MatchdayError

METRIC_COLUMNS = (
    "rows",
    "error_rate",
    "latency_p99",
    "drift_share",
    "prediction_drift",
    "accuracy",
    "estimated_accuracy",
    "label_coverage",
)


def metrics(
    deployment: str,
    window: Annotated[str, typer.Option(help="5m, 1h, 1d, or the window by count (e.g. 1000rows)")] = "5m",
    metric: Annotated[list[str] | None, typer.Option("--metric", "-m", help="metrics to show (repeat)")] = None,
    segment: Annotated[str, typer.Option(help="a segment, e.g. country=DE")] = "",
    last: Annotated[int, typer.Option(help="newest windows to show")] = 12,
    as_json: JsonFlag = False,
) -> None:
    """The monitoring windows of DEPLOYMENT: one row per window, newest last."""
    from matchday.monitoring import known_metric, parse_window, segment_features, unkept_segment, unkept_window

    ws = default_workspace()
    ws.deployments.get(deployment)
    config = ws.settings.monitoring
    width = parse_window(window, config.count_window)  # the API's reader and its errors
    names = list(metric or METRIC_COLUMNS)
    for name in names:
        if not known_metric(name):
            raise MatchdayError(f"unknown metric {name!r}")
    windows = ws.monitoring.windows.series(deployment, window, segment=segment)[-last:]
    if not windows:  # a count this server keeps no windows of, a feature it does not slice by: say so
        features = segment_features(config.segments, deployment)
        unkept = unkept_window(width, config.count_window) or unkept_segment(segment, features, deployment)
        if unkept is not None:
            raise unkept
    if as_json:
        render.print_json(
            [
                {
                    "model": w.model,
                    "version": w.version,
                    "start": w.start.isoformat(),
                    "end": w.end.isoformat(),
                    "rows": w.rows,
                    "diagnosis": ws.monitoring.diagnosis(w),
                    "metrics": {n: w.metrics.get(n) for n in names},
                }
                for w in windows
            ]
        )
        return
    out = render.out()
    if not windows:
        out.print(f"no {window} windows for {deployment} yet (the server summarises the log every few seconds)")
        return
    title = f"{deployment}, {window} windows" + (f", {segment}" if segment else "")
    out.print(render.windows_table(title, windows, names, ws.monitoring.diagnosis, seconds=not width.by_time))


def monitors(deployment: Annotated[str | None, typer.Argument()] = None) -> None:
    """The monitors watching each deployment (matchday.yaml and the defaults), and which are firing."""
    ws = default_workspace()
    loop = ws.monitoring
    names = [d.name for d in ws.deployments.list() if deployment is None or d.name == deployment]
    if deployment is not None and not names:
        ws.deployments.get(deployment)
    firing = {(a.monitor, a.deployment) for a in loop.engine.alerts.firing()}
    declared = {m.name for m in loop.monitors}
    one = [Col("deployment", key=True)] if deployment is None else []
    table = FittingTable(
        *one,
        Col("monitor", key=True),
        "state",
        "metric",
        "window",
        Col("condition", wrap=True),
        Col("severity", fold=1),
        Col("breaches", fold=3),
        Col("actions", wrap=True, fold=2),
        Col("from", fold=4),
        title=None if deployment is None else f"monitors of {deployment}",
    )
    for name in names:
        for m in loop.monitors_of(name):
            condition = f"{m.when} vs {m.relative_to}" if m.relative_to else m.when
            table.add_row(
                *([name] if deployment is None else []),
                m.name,
                "[red]firing[/red]" if (m.name, name) in firing else "ok",
                m.metric + (f" by {m.segment}" if m.segment else ""),
                m.window,
                condition,
                m.severity,
                str(m.breaches),
                ", ".join(a.kind for a in m.actions),
                "matchday.yaml" if m.name in declared else "default",
            )
    render.out().print(table)


def alerts(
    deployment: Annotated[str | None, typer.Argument()] = None,
    firing: Annotated[bool, typer.Option("--firing", metavar=FLAG, help="only alerts firing now")] = False,
    limit: int = 50,
    as_json: JsonFlag = False,
) -> None:
    """Alerts, newest first: firing and resolved, with the monitor and the value behind each."""
    from matchday.monitoring import alert_body

    ws = default_workspace()
    if deployment is not None:
        ws.deployments.get(deployment)
    records = ws.monitoring.engine.alerts.list(deployment, state="firing" if firing else None, limit=limit)
    if as_json:
        render.print_json([alert_body(a, a.state)["alert"] for a in records])
        return
    render.out().print(render.alerts_table(records))
