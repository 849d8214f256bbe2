"""``matchday deploy`` and ``matchday deployments``: named endpoints that serve a model version or alias."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from matchday.cli import render
from matchday.cli.context import default_workspace, local_actor
from matchday.cli.render import Col, FittingTable
from matchday.cli.review import (
    AuditOption,
    BlindOption,
    DeadlineOption,
    FallbackOption,
    LevelOption,
    ReviewsOption,
    RuleOption,
    policy_options,
)
from matchday.errors import MatchdayError

deployments_app = typer.Typer(
    help="Deployments: named endpoints serving a model version or alias.", no_args_is_help=True
)


def deploy(
    name: Annotated[str, typer.Argument(help="deployment name (the URL path segment)")],
    model: Annotated[str, typer.Argument(help="MODEL@ALIAS (follows the alias) or MODEL:VERSION")],
    max_batch_size: Annotated[int, typer.Option(help="rows merged into one model call at most")] = 64,
    max_wait_ms: Annotated[float, typer.Option(help="how long a batch may wait for more requests")] = 0.0,
    max_rows: Annotated[int, typer.Option(help="rows accepted in one request")] = 10_000,
    automation: LevelOption = None,
    review_rule: RuleOption = None,
    review_deadline: DeadlineOption = None,
    audit_rate: AuditOption = None,
    reviews_required: ReviewsOption = None,
    deadline_fallback: FallbackOption = None,
    blind: BlindOption = None,
    reason: Annotated[str | None, typer.Option(help="why (kept with an automation change)")] = None,
) -> None:
    """Create or update deployment NAME to serve MODEL (and, with --automation, who decides its answers)."""
    from matchday.registry import Signature
    from matchday.review import check_policy

    ws = default_workspace()
    settings: dict[str, Any] = {"max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms, "max_rows": max_rows}
    policy = policy_options(
        automation, review_rule, review_deadline, audit_rate, reviews_required, deadline_fallback, blind
    )
    if policy and automation is None:
        raise MatchdayError("--review-rule, --audit-rate and the other review options need --automation LEVEL")
    if policy:  # checked against the version it will serve before anything is written
        signature = Signature.model_validate(ws.registry.get_version(model).signature)
        classes = signature.output.classes
        check_policy(policy, signature, [str(c) for c in classes] if classes else None)
    record, previous = ws.deployments.deploy(name, model, settings)
    change = (
        f"(was {previous})"
        if previous and previous != record.model_ref
        else "(new)"
        if previous is None
        else "(unchanged)"
    )
    out = render.out()
    out.print(f"deployment [bold]{record.name}[/] serves {record.model_ref} {change}")
    if policy:
        moved = ws.automation.set(name, policy, local_actor(), reason or f"deployed with --automation {automation}")
        level = moved.after.level.value if moved.after else "-"
        out.print(f"deployment [bold]{name}[/] decides at [bold]{level}[/]")


@deployments_app.command("list")
def deployments_list() -> None:
    """Every deployment and the version it routes to now."""
    ws = default_workspace()
    deployments = ws.deployments
    table = FittingTable(
        Col("deployment", key=True),
        "serves",
        Col("version now", wrap=True),
        Col("max batch", fold=2),
        Col("updated (UTC)", fold=1),
    )
    for d in deployments.list():
        try:
            now = traffic_split(deployments.route(d.name))
        except MatchdayError as exc:
            now = f"[red]{exc.message}[/]"
        table.add_row(d.name, d.model_ref, now, str(d.settings.get("max_batch_size")), f"{d.updated_at:%Y-%m-%d %H:%M}")
    render.out().print(table)


def traffic_split(plan: Any) -> str:
    """``fraud:2`` or ``fraud:1 90% / fraud:2 10%`` or ``fraud:1 (shadow fraud:2 100%)``."""
    if plan.candidate is None:
        return plan.primary.ref
    if plan.shadow_share:
        return f"{plan.primary.ref} (shadow {plan.candidate.ref} {plan.shadow_share:.0%})"
    share = plan.candidate_share
    return f"{plan.primary.ref} {1 - share:.0%} / {plan.candidate.ref} {share:.0%}"
