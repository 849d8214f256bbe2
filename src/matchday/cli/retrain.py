"""``matchday retrain``: a deployment's retraining policy, its runs (list, show), the operator's verbs (run,
approve, cancel) and the dry run (simulate). They work on the store directly, as the machine's own
administrator; the audit trail names the caller as ``cli:<os user>``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from matchday.cli.context import default_workspace, local_actor
from matchday.cli.options import JsonFlag
from matchday.cli.render import Col, FittingTable, print_json

if TYPE_CHECKING:
    from matchday.retrain import RunJson

retrain_app = typer.Typer(
    help="Retraining: a deployment's policy, its runs, and the operator's verbs (run, approve, cancel, simulate).",
    no_args_is_help=True,
)

ReasonOption = Annotated[str | None, typer.Option(help="why (kept with the run and its event)")]
RunIdArgument = Annotated[int, typer.Argument(help="the run's id (`matchday retrain list` shows them)")]
_STATE_COLOUR = {
    "promoted": "green",
    "rejected": "yellow",
    "failed": "red",
    "cancelled": "dim",
    "awaiting_approval": "magenta",
}


def out() -> Console:
    """Built per command: it sees the streams and terminal width of the call."""
    return Console(highlight=False)


@retrain_app.command("policy")
def retrain_policy(
    deployment: Annotated[str, typer.Argument(help="the deployment")], as_json: JsonFlag = False
) -> None:
    """NAME's retraining policy as the worker applies it: matchday.yaml's fields with every default filled in
    (durations in seconds)."""
    import yaml

    from matchday.retrain import policy_json

    policy = policy_json(default_workspace().retraining.policy(deployment))
    if as_json:
        print_json({"deployment": deployment, "policy": policy})
        return
    typer.echo(yaml.safe_dump({"retrain": [policy]}, sort_keys=False, allow_unicode=True).rstrip())


@retrain_app.command("list")
def retrain_list(
    deployment: Annotated[str | None, typer.Option(help="only this deployment's runs")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many, newest first")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Retraining runs, newest first: state, trigger, parent -> candidate, the evaluation's gain."""
    from matchday.retrain import run_json

    runs = [run_json(r) for r in default_workspace().retraining.runs(deployment, limit)]
    if as_json:
        print_json({"runs": runs})
        return
    console = out()
    if not runs:
        where = f" of {deployment}" if deployment else ""
        console.print(f"no retraining runs{where} yet (`matchday retrain run NAME` starts one)")
        return
    table = FittingTable(
        Col("id", key=True),
        "deployment",
        "state",
        Col("trigger", wrap=True),
        Col("parent -> candidate", wrap=True),
        "gain",
        Col("created (UTC)", fold=1),
        Col("finished", fold=2),
    )
    for r in runs:
        table.add_row(
            str(r["id"]),
            escape(r["deployment"]),
            _state(r["state"]),
            escape(_trigger(r["trigger"])),
            escape(f"{r['parent'] or '-'} -> {r['candidate'] or '-'}"),
            _signed(r["gain"]),
            _time(r["created_at"]),
            _time(r["finished_at"], short=True),
        )
    console.print(table)


@retrain_app.command("show")
def retrain_show(run_id: RunIdArgument, as_json: JsonFlag = False) -> None:
    """One run in full: every field, its steps with times and messages, the data it was given, the
    evaluation against the champion (with its segments) and the rollout it went through."""
    from matchday.retrain import run_json

    run = run_json(default_workspace().retraining.get(run_id))
    if as_json:
        print_json(run)
    else:
        print_run(out(), run)


def print_run(console: Console, run: RunJson) -> None:
    state = _state(run["state"])
    console.print(f"retraining run [bold]{run['id']}[/] of [bold]{escape(run['deployment'])}[/]: {state}")
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="dim")
    fields.add_column()
    trigger = run["trigger"]
    rows: list[tuple[str, str]] = [
        ("trigger", _trigger(trigger) + (f": {trigger['reason']}" if trigger.get("reason") else "")),
        ("started by", run["actor"]),
        ("parent", run["parent"] or "-"),
        ("candidate", run["candidate"] or "-"),
        ("rollout", str(run["rollout_id"]) if run["rollout_id"] is not None else "-"),
        ("reason", run["reason"] or "-"),
        ("error", run["error"] or "-"),
        (
            "attempts",
            str(run["attempts"]) + (f", next at {_time(run['next_attempt_at'])}" if run["next_attempt_at"] else ""),
        ),
        ("owner", (run["owner"] or "-") + (f", heartbeat {_time(run['heartbeat_at'])}" if run["heartbeat_at"] else "")),
        ("created", _time(run["created_at"])),
        ("updated", _time(run["updated_at"])),
        ("finished", _time(run["finished_at"])),
    ]
    if trigger.get("kind") == "monitor" and trigger.get("message"):
        rows.insert(1, ("alert", str(trigger["message"])))
    for key, value in rows:
        fields.add_row(key, escape(value))
    console.print(fields)
    snapshot = run["snapshot"]
    if snapshot:
        counts = snapshot.get("rows", {})
        sources = ", ".join(f"{k} {v}" for k, v in (snapshot.get("labels_by_source") or {}).items()) or "-"
        window = snapshot.get("window") or {}
        console.print(
            escape(
                f"data: {counts.get('production', 0)} labelled production rows to train on, "
                f"{counts.get('holdout', 0)} held out, {counts.get('reference', 0)} reference rows; "
                f"labels by source: {sources}; predicted {_time(window.get('since'))} to "
                f"{_time(window.get('until'))}; sha256 {str(snapshot.get('sha256', '-'))[:12]}"
            )
        )
    evaluation = run["evaluation"]
    if evaluation:
        print_evaluation(console, evaluation)
    if run["steps"]:
        steps = FittingTable(Col("at (UTC)", key=True), "state", Col("message", wrap=True), title="steps")
        for step in run["steps"]:
            steps.add_row(_time(step.get("at")), _state(str(step.get("state", "-"))), escape(str(step.get("message"))))
        console.print(steps)


def print_evaluation(console: Console, evaluation: dict[str, Any]) -> None:
    verdict = "[green]accepted[/]" if evaluation.get("accepted") else "[yellow]rejected[/]"
    interval = evaluation.get("interval") or {}
    metric = evaluation.get("metric", "metric")
    console.print(
        f"evaluation: {verdict}: {metric} {_num(evaluation.get('candidate'))} vs champion "
        f"{_num(evaluation.get('champion'))} on {evaluation.get('rows')} held-out rows, gain "
        f"{_signed(evaluation.get('gain'))} ({_pct(evaluation.get('confidence'))} interval "
        f"{_signed(interval.get('low'))} to {_signed(interval.get('high'))}; min_gain "
        f"{_signed(evaluation.get('min_gain'))})"
    )
    for reason in evaluation.get("reasons") or []:
        console.print(f"  - {escape(str(reason))}")
    segments = evaluation.get("segments") or []
    if segments:
        table = FittingTable(
            Col("segment", key=True),
            Col("value", key=True),
            "rows",
            "champion",
            "candidate",
            "gain",
            Col("interval", wrap=True),
            "verdict",
            title="segments",
        )
        colour = {"worse": "red", "better": "green", "same": "white", "too_few_rows": "dim"}
        for s in segments:
            seg_interval = s.get("interval")
            table.add_row(
                escape(str(s.get("segment"))),
                escape(str(s.get("value"))),
                str(s.get("rows")),
                _num(s.get("champion")),
                _num(s.get("candidate")),
                _signed(s.get("gain")),
                f"{_signed(seg_interval['low'])} to {_signed(seg_interval['high'])}" if seg_interval else "-",
                f"[{colour.get(s.get('verdict', ''), 'white')}]{s.get('verdict')}[/]",
            )
        console.print(table)


@retrain_app.command("run")
def retrain_run(
    deployment: Annotated[str, typer.Argument(help="the deployment whose policy to run")],
    reason: ReasonOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Queue a run of NAME's policy now (the guards other than one run at a time do not apply); the worker
    takes it on."""
    from matchday.retrain import run_json

    run = run_json(default_workspace().retraining.run(deployment, local_actor(), reason))
    if as_json:
        print_json(run)
        return
    out().print(
        f"retraining run [bold]{run['id']}[/] of {escape(deployment)} queued from {escape(run['parent'] or '-')}; "
        f"the worker takes it on (`matchday retrain show {run['id']}` follows it)"
    )


@retrain_app.command("approve")
def retrain_approve(run_id: RunIdArgument, reason: ReasonOption = None, as_json: JsonFlag = False) -> None:
    """Let a run awaiting approval roll its candidate out."""
    from matchday.retrain import run_json

    run = run_json(default_workspace().retraining.approve(run_id, local_actor(), reason))
    if as_json:
        print_json(run)
        return
    out().print(f"retraining run [bold]{run_id}[/] approved: {escape(run['candidate'] or '-')} goes to its rollout")


@retrain_app.command("cancel")
def retrain_cancel(run_id: RunIdArgument, reason: ReasonOption = None, as_json: JsonFlag = False) -> None:
    """End a run; a rollout it started is rolled back (the champion keeps serving)."""
    from matchday.retrain import run_json

    run = run_json(default_workspace().retraining.cancel(run_id, local_actor(), reason))
    if as_json:
        print_json(run)
        return
    out().print(f"retraining run [bold]{run_id}[/] {_state(run['state'])}: {escape(run['reason'] or '')}")


@retrain_app.command("simulate")
def retrain_simulate(
    deployment: Annotated[str, typer.Argument(help="the deployment whose policy to replay")],
    since: Annotated[str, typer.Option(help="how far back: a duration (30d, 12h) or an ISO 8601 time")] = "30d",
    until: Annotated[
        str | None, typer.Option(help="up to (a duration back from now or an ISO time); now if absent")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The dry run: when NAME's policy would have fired over the stored windows, what its guards would have
    stopped, and how many labelled rows each run would have had."""
    from matchday.errors import MatchdayError
    from matchday.retrain import period_start

    now = datetime.now(UTC)
    try:
        start = period_start(since, now)
    except ValueError as exc:
        raise MatchdayError(f"--since: {exc}") from exc
    try:
        end = period_start(until, now) if until is not None else now
    except ValueError as exc:
        raise MatchdayError(f"--until: {exc}") from exc
    if end <= start:
        raise MatchdayError(f"--until ({until}) must come after --since ({since})")
    ws = default_workspace()
    ws.retraining.policy(deployment)  # a clear "no policy" before the windows are read
    result = ws.simulate_retraining(deployment, start, end).to_json()
    if as_json:
        print_json(result)
        return
    console = out()
    replayed = ", ".join(f"{k} {v}" for k, v in result["windows"].items()) or "none (no trigger monitors)"
    console.print(
        f"[bold]{escape(deployment)}[/], {_time(result['since'])} to {_time(result['until'])}: "
        f"{len(result['triggers'])} triggers, {result['runs']} would have run (windows replayed: {escape(replayed)})"
    )
    if result["triggers"]:
        table = FittingTable(
            Col("when (UTC)", key=True),
            Col("trigger", wrap=True),
            "outcome",
            Col("reason", wrap=True),
            Col("labelled rows", wrap=True),
            Col("holdout rows", wrap=True),
            Col("new labels", wrap=True),
        )
        for t in result["triggers"]:
            outcome = "[green]run[/]" if t["outcome"] == "run" else "[yellow]suppressed[/]"
            table.add_row(
                _time(t["at"]),
                escape(t["trigger"]),
                outcome,
                escape(t["reason"] or ""),
                f"{t['labelled_rows']:,}",
                f"{t['holdout_rows']:,}",
                f"{t['new_labels']:,}",
            )
        console.print(table)
    for note in result["notes"]:
        console.print(f"[dim]note: {escape(note)}[/]")


def _state(state: str) -> str:
    colour = _STATE_COLOUR.get(state)
    return f"[{colour}]{state}[/]" if colour else state


def _trigger(trigger: dict[str, Any]) -> str:
    from matchday.retrain import trigger_text

    return trigger_text(trigger)


def _time(value: str | None, *, short: bool = False) -> str:
    """An ISO time as ``2026-03-01 12:00:00`` (UTC), or ``-``."""
    if not value:
        return "-"
    at = datetime.fromisoformat(value).astimezone(UTC)
    return f"{at:%m-%d %H:%M:%S}" if short else f"{at:%Y-%m-%d %H:%M:%S}"


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def _signed(value: Any) -> str:
    return "-" if value is None else f"{value:+.4f}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.0%}"
