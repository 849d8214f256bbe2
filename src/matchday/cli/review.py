"""``matchday review`` (the queue, for reviewers at a terminal) and ``matchday automation`` (a
deployment's level: show, set, suggest). They work on the store directly, as the machine's own
administrator; ``--reviewer`` names who decides."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from matchday.cli.context import default_workspace, local_actor
from matchday.cli.options import FLAG, JsonFlag
from matchday.cli.render import Col, FittingTable, out, print_json

review_app = typer.Typer(help="The review queue: list, claim the next item, decide.", no_args_is_help=True)
automation_app = typer.Typer(help="Who decides a deployment's answers: show, set, suggest.", no_args_is_help=True)


def policy_options(
    automation: str | None,
    review_rule: str | None,
    review_deadline: str | None,
    audit_rate: float | None,
    reviews_required: int | None,
    deadline_fallback: str | None,
    blind: bool | None,
) -> dict[str, Any]:
    """The policy the flags of `deploy` and `automation set` give (only what was given)."""
    given = {
        "level": automation,
        "review_rule": review_rule,
        "review_deadline": review_deadline,
        "audit_rate": audit_rate,
        "reviews_required": reviews_required,
        "deadline_fallback": deadline_fallback,
        "blind": blind,
    }
    return {k: v for k, v in given.items() if v is not None}


LevelOption = Annotated[
    str | None,
    typer.Option(
        "--automation",
        help="human_led, human_led_machine_supported, machine_led_human_supported, machine_led_human_governed "
        "or machine_controlled",
    ),
]
RuleOption = Annotated[
    str | None, typer.Option(help='machine_led_human_governed: answers held for a person, e.g. prediction == "fraud"')
]
DeadlineOption = Annotated[str | None, typer.Option(help="how long a held answer waits for a person: 4h, 30m, 2d")]
AuditOption = Annotated[float | None, typer.Option(help="share of final answers sampled for audit (0 to 1)")]
ReviewsOption = Annotated[int | None, typer.Option(help="independent reviews an item needs (1 to 3)")]
FallbackOption = Annotated[str | None, typer.Option(help="at the deadline: approve, reject or escalate")]
BlindOption = Annotated[
    bool | None, typer.Option("--blind/--not-blind", metavar=FLAG, help="hide the model's answer from reviewers")
]


@review_app.command("list")
def review_list(
    deployment: Annotated[str, typer.Argument(help="whose queue")],
    status: Annotated[str, typer.Option(help="open, escalated, decided, expired (comma-separated)")] = "open,escalated",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Items of NAME's queue, most urgent first."""
    from matchday.review import item_json

    ws = default_workspace()
    ws.deployments.get(deployment)
    items = ws.review.items(deployment, tuple(s for s in status.split(",") if s), limit)
    if as_json:
        print_json({"items": [item_json(i) for i in items]})
        return
    table = FittingTable(
        Col("review id", key=True),
        "reason",
        "status",
        Col("answer", wrap=True),
        Col("deadline (UTC)", fold=1),
        "reviews",
        Col("claimed by", wrap=True, fold=2),
    )
    for i in items:
        answer = "(blind)" if i.blind else json.dumps(i.suggestion, default=str)
        deadline = f"{i.deadline:%Y-%m-%d %H:%M}" if i.deadline else ""
        votes = f"{sum(d.action != 'skip' for d in i.decisions)}/{i.required}"
        table.add_row(i.id, i.reason, i.status, answer, deadline, votes, i.lease_owner or "")
    out().print(table)
    if not items:
        out().print(f"[dim]nothing {status} in {deployment}'s queue[/]")


@review_app.command("next")
def review_next(
    deployment: Annotated[str, typer.Argument(help="whose queue")],
    reviewer: Annotated[str, typer.Option(help="who is reviewing (each reviewer decides an item once)")],
    lease: Annotated[
        float | None, typer.Option(help="seconds the item is held for you (the policy's if absent)")
    ] = None,
    reveal: Annotated[bool, typer.Option(metavar=FLAG, help="show the model's answer of a blind item")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Claim the next item of NAME's queue (held for you under a lease) and show it."""
    from matchday.review import item_json

    ws = default_workspace()
    ws.deployments.get(deployment)
    item = ws.review.next(deployment, reviewer, lease or ws.automation.lease_seconds(deployment))
    if as_json:
        print_json({"item": item_json(item, reveal=reveal) if item is not None else None})
        return
    if item is None:
        out().print(f"nothing waits for {reviewer} in {deployment}'s queue")
        return
    shown = item_json(item, reveal=reveal)
    console = out()
    console.print(
        f"[bold]{item.id}[/] ({item.reason}{': ' + item.rule if item.rule else ''}) request {item.request_id}"
    )
    for name, value in item.inputs.items():
        console.print(f"  {name} = {value!r}")
    if shown["suggestion"] is None and item.blind:
        console.print("  model's answer: hidden (blind review; --reveal shows it)")
    else:
        confidence = f" (confidence {item.confidence:.3f})" if item.confidence is not None else ""
        console.print(f"  model's answer: {item.suggestion!r}{confidence}")
    console.print(f"decide: matchday review decide {item.id} approve|override|skip [--label L] --reviewer {reviewer}")


@review_app.command("decide")
def review_decide(
    review_id: Annotated[str, typer.Argument(help="the item's review id")],
    action: Annotated[str, typer.Argument(help="approve, override or skip")],
    reviewer: Annotated[str, typer.Option(help="who decides")],
    label: Annotated[str | None, typer.Option(help='override: the right label (JSON: 1, "fraud", 2.5)')] = None,
    as_json: JsonFlag = False,
) -> None:
    """Decide an item: approve the model's answer, override it with --label, or skip it."""
    from matchday.review import decision_json

    value: Any = None
    if label is not None:
        try:
            value = json.loads(label)
        except json.JSONDecodeError:
            value = label  # a bare word: the label as text
    ws = default_workspace()
    item = ws.review.decide(review_id, reviewer, action, value)
    result = decision_json(item)
    if as_json:
        print_json(result)
        return
    if item.status == "decided":
        out().print(f"{review_id}: {item.outcome}, label {item.label!r} (by {', '.join(item.decided_by or [])})")
    elif item.status == "escalated":
        out().print(f"{review_id}: reviewers disagree; escalated for one more review")
    else:
        done = sum(d.action != "skip" for d in item.decisions)
        out().print(f"{review_id}: {action} recorded ({done} of {item.required} reviews)")


@review_app.command("stats")
def review_stats(
    deployment: Annotated[str, typer.Argument(help="whose queue")],
    window: Annotated[str | None, typer.Option(help="items created in the last 1h, 1d, 7d... (all if absent)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Queue depth, review latency, deadline misses, override rate, agreement, estimated accuracy."""
    from matchday.errors import MatchdayError
    from matchday.review import window_start

    try:
        since = window_start(window)
    except ValueError as exc:
        raise MatchdayError(f"--window {window}: {exc}") from exc
    ws = default_workspace()
    ws.deployments.get(deployment)
    stats = ws.review.stats(deployment, since)
    if as_json:
        print_json(stats)
        return
    table = FittingTable(Col("metric", key=True), Col("value", wrap=True))
    for key, value in stats.items():
        table.add_row(key, _fmt(value))
    out().print(table)


@automation_app.command("show")
def automation_show(deployment: Annotated[str, typer.Argument()], as_json: JsonFlag = False) -> None:
    """NAME's automation level and review policy."""
    policy = default_workspace().automation.policy(deployment)
    stored = policy.stored() if policy else None
    if as_json:
        print_json({"deployment": deployment, "automation": stored})
    elif policy is None:
        out().print(f"{deployment}: no automation policy (the model decides alone; nothing is queued)")
    else:
        out().print(f"{deployment}: [bold]{policy.level.value}[/] {json.dumps(stored)}")


@automation_app.command("set")
def automation_set(
    deployment: Annotated[str, typer.Argument()],
    level: Annotated[str, typer.Argument(help="the level, or none to remove the policy")],
    reason: Annotated[str, typer.Option(help="why (kept in the audit trail)")],
    review_rule: RuleOption = None,
    review_deadline: DeadlineOption = None,
    audit_rate: AuditOption = None,
    reviews_required: ReviewsOption = None,
    deadline_fallback: FallbackOption = None,
    blind: BlindOption = None,
) -> None:
    """Move NAME to LEVEL (an event with who and why)."""
    ws = default_workspace()
    settings = (
        None
        if level == "none"
        else policy_options(level, review_rule, review_deadline, audit_rate, reviews_required, deadline_fallback, blind)
    )
    change = ws.automation.set(deployment, settings, local_actor(), reason)
    before = change.before.level.value if change.before else "none"
    after = change.after.level.value if change.after else "none"
    out().print(f"{deployment}: {before} -> [bold]{after}[/]")


@automation_app.command("suggest")
def automation_suggest(deployment: Annotated[str, typer.Argument()], as_json: JsonFlag = False) -> None:
    """Whether the evidence supports moving NAME one level up, or calls for one down."""
    found = default_workspace().automation.suggest(deployment)
    if as_json:
        print_json(
            {
                "deployment": deployment,
                "level": found.level.value,
                "move": found.move,
                "to": found.to.value if found.to else None,
                "reasons": found.reasons,
                "evidence": found.evidence,
            }
        )
        return
    target = f" to {found.to.value}" if found.to else ""
    out().print(f"{deployment} at {found.level.value}: [bold]{found.move}{target}[/]")
    for reason in found.reasons:
        out().print(f"  - {reason}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return " to ".join(_fmt(v) for v in value)
    return "-" if value is None else str(value)
