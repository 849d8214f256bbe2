"""``matchday rollout``: move a deployment to a new version safely (canary, shadow, blue-green, A/B), and
``matchday events``, the audit trail of every decision."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from matchday.cli import render
from matchday.cli.context import default_workspace, local_actor
from matchday.cli.options import FLAG, JsonFlag
from matchday.cli.render import Col, FittingTable

rollout_app = typer.Typer(
    help="Move a deployment to a new version safely: canary, shadow, blue-green, A/B.", no_args_is_help=True
)


DeploymentArgument = Annotated[str, typer.Argument(metavar="DEPLOYMENT", help="the deployment", show_default=False)]
ReasonOption = Annotated[str | None, typer.Option(metavar="TEXT", help="why (kept in the audit trail)")]
# The built-in plan (rollout/plan.py) as help shows it; a test holds them equal. An option left out takes the
# deployment's plan under `rollouts:` in matchday.yaml first, so the options themselves default to None.
GATE_DEFAULTS = (
    "max_error_rate_increase=0.01, max_latency_p99_ratio=1.5, latency_slack_seconds=0.005, "
    "max_prediction_divergence=0.2, max_metric_drop=0.02, labels=optional, min_labels=50"
)


@rollout_app.command("start")
def rollout_start(
    deployment: Annotated[str, typer.Argument(metavar="DEPLOYMENT", help="the deployment to move", show_default=False)],
    candidate: Annotated[
        str,
        typer.Argument(metavar="CANDIDATE", help="MODEL:VERSION (or MODEL@ALIAS, resolved now)", show_default=False),
    ],
    strategy: Annotated[
        str | None,
        typer.Option(metavar="STRATEGY", show_default="canary", help="canary, shadow, bluegreen or ab"),
    ] = None,
    steps: Annotated[
        str | None,
        typer.Option(metavar="PERCENTS", show_default="10,25,50,100", help="canary: traffic shares, in percent"),
    ] = None,
    interval: Annotated[
        str | None, typer.Option(metavar="DURATION", show_default="5m", help="minimum time per step, e.g. 30s, 5m")
    ] = None,
    min_requests: Annotated[
        int | None, typer.Option(metavar="ROWS", show_default="200", help="rows each version must answer per step")
    ] = None,
    failure_limit: Annotated[
        int | None, typer.Option(metavar="N", show_default="0", help="failed analyses tolerated; one more rolls back")
    ] = None,
    deadline: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            show_default="10 x interval, at least 60s",
            help="an inconclusive step pauses for a person after this long",
        ),
    ] = None,
    fallback: Annotated[
        bool | None,
        typer.Option(
            "--fallback/--no-fallback",
            metavar=FLAG,
            show_default="no-fallback",
            help="canary, ab: answer the candidate's failures with the baseline",
        ),
    ] = None,
    share: Annotated[
        float | None,
        typer.Option(
            metavar="PERCENT",
            show_default="shadow 100, ab 50",
            help="shadow: percent mirrored; ab: percent to the candidate",
        ),
    ] = None,
    gate: Annotated[
        list[str] | None,
        typer.Option(
            "--gate",
            metavar="NAME=VALUE",
            show_default=GATE_DEFAULTS,
            help="a canary's analysis gate (repeat), e.g. max_error_rate_increase=0.02 or labels=required",
        ),
    ] = None,
) -> None:
    """Start moving DEPLOYMENT to CANDIDATE; the server's controller takes it from there, and only on traffic:
    each step waits until both versions have answered --min-requests rows.

    An option left out takes the deployment's plan under `rollouts:` in matchday.yaml, else the default shown."""
    gates: dict[str, Any] = {}
    for item in gate or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--gate {item!r}: expected NAME=VALUE")
        gates[key.strip()] = value.strip()
    options = {
        "strategy": strategy,
        "steps": steps,
        "interval": interval,
        "min_requests": min_requests,
        "failure_limit": failure_limit,
        "deadline": deadline,
        "fallback": fallback,
        "share": share,
        "gates": gates or None,
    }
    ws = default_workspace()
    record = ws.rollouts.start(deployment, candidate, options, actor=local_actor())
    out = render.out()
    out.print(
        f"started [bold]{record.strategy}[/] rollout {record.id} on [bold]{deployment}[/]: "
        f"{record.baseline} -> {record.candidate}; candidate share now {record.weight:g}%"
    )
    out.print(f"the controller inside `matchday serve` moves it on; watch with `matchday rollout status {deployment}`")


@rollout_app.command("status")
def rollout_status(
    deployment: DeploymentArgument,
    as_json: JsonFlag = False,
    events: Annotated[int, typer.Option(metavar="N", help="how many recent events to show")] = 10,
) -> None:
    """Where the rollout stands, the live numbers behind its next decision, and its recent events."""
    status = default_workspace().rollouts.status(deployment, events=events)
    out = render.out()
    if as_json:
        out.print_json(json.dumps(status.as_dict(), default=str))
    else:
        out.print(render.rollout_status(status))


def _rollout_action(action: str, deployment: str, reason: str | None) -> None:
    ws = default_workspace()
    record = getattr(ws.rollouts, action)(deployment, local_actor(), reason)
    render.out().print(
        f"rollout {record.id} on [bold]{deployment}[/]: {record.state}{f' ({record.reason})' if record.reason else ''}"
    )


@rollout_app.command("promote")
def rollout_promote(deployment: DeploymentArgument, reason: ReasonOption = None) -> None:
    """Make the candidate the deployment's version now (moves its alias, or repoints it)."""
    _rollout_action("promote", deployment, reason)


@rollout_app.command("rollback")
def rollout_rollback(deployment: DeploymentArgument, reason: ReasonOption = None) -> None:
    """All traffic back to the baseline now; the rollout ends (also: abort)."""
    _rollout_action("rollback", deployment, reason)


@rollout_app.command("abort", hidden=True)
def rollout_abort(deployment: DeploymentArgument, reason: ReasonOption = None) -> None:
    _rollout_action("rollback", deployment, reason)


@rollout_app.command("pause")
def rollout_pause(deployment: DeploymentArgument, reason: ReasonOption = None) -> None:
    """Hold the traffic split where it is until resume, promote or rollback."""
    _rollout_action("pause", deployment, reason)


@rollout_app.command("resume")
def rollout_resume(deployment: DeploymentArgument, reason: ReasonOption = None) -> None:
    """Continue a paused rollout; its step starts a fresh window."""
    _rollout_action("resume", deployment, reason)


@rollout_app.command("history")
def rollout_history(
    deployment: DeploymentArgument,
    limit: Annotated[int, typer.Option(metavar="N", help="the newest this many")] = 20,
) -> None:
    """Past and present rollouts of DEPLOYMENT."""
    table = FittingTable(
        Col("id", key=True),
        "strategy",
        "baseline",
        "candidate",
        "state",
        Col("started (UTC)", fold=1),
        Col("finished", fold=2),
        Col("reason", wrap=True),
    )
    for r in default_workspace().rollouts.history(deployment, limit):
        table.add_row(
            str(r.id),
            r.strategy,
            r.baseline,
            r.candidate,
            r.state,
            f"{r.started_at:%Y-%m-%d %H:%M}",
            f"{r.finished_at:%H:%M:%S}" if r.finished_at else "",
            r.reason or "",
        )
    render.out().print(table)


def events(
    deployment: Annotated[str | None, typer.Argument(help="one deployment's events (default: all)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """The audit trail, newest first: rollout decisions, tokens and users made and revoked, and who did each."""
    table = FittingTable(Col("at (UTC)", key=True), "deployment", "kind", "actor", Col("reason", wrap=True))
    for e in default_workspace().rollouts.list_events(deployment, limit):
        table.add_row(f"{e.at:%Y-%m-%d %H:%M:%S}", e.deployment or "", e.kind, e.actor, e.reason)
    render.out().print(table)
