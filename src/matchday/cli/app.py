"""The ``matchday`` command: parse, call a part, print with Rich. No logic of its own."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from matchday.cli.access import local_actor, tokens_app, users_app
from matchday.cli.batch import batch_app
from matchday.cli.edge import edge_app
from matchday.cli.retrain import retrain_app
from matchday.cli.review import (
    AuditOption,
    BlindOption,
    DeadlineOption,
    FallbackOption,
    LevelOption,
    ReviewsOption,
    RuleOption,
    automation_app,
    policy_options,
    review_app,
)
from matchday.errors import MatchdayError

if TYPE_CHECKING:
    from matchday.monitoring import ColumnTest
    from matchday.workspace import Workspace


def default_workspace() -> Workspace:
    """The environment's workspace, imported at the command boundary: `matchday --help` and commands
    that need no part do not pay for importing them (NumPy, pyarrow, SQLAlchemy: a second and more)."""
    from matchday.workspace import default_workspace as environment_workspace

    return environment_workspace()


app = typer.Typer(
    help="matchday: deploy trained models and keep watch over them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Register, inspect, alias and delete model versions.", no_args_is_help=True)
db_app = typer.Typer(help="The metadata database.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(review_app, name="review")
app.add_typer(automation_app, name="automation")
app.add_typer(retrain_app, name="retrain")
app.add_typer(edge_app, name="edge")
app.add_typer(batch_app, name="batch")

out = Console()
err = Console(stderr=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (also done automatically on start)."""
    ws = default_workspace()
    ws.database.upgrade()
    from matchday.store import head_revision, redact

    out.print(
        f"database {redact(ws.database.url)} is at revision [bold]{ws.database.current_revision()}[/] (head {head_revision()})"
    )


@db_app.command("current")
def db_current() -> None:
    """Print the database's migration revision."""
    ws = default_workspace()
    out.print(ws.database.current_revision() or "(empty)")


@models_app.command("register")
def models_register(
    name: str,
    path: Annotated[
        str, typer.Argument(help="a .skops/.onnx/.pkl/.joblib file, an MLflow model directory, or module:function")
    ],
    reference: Annotated[Path | None, typer.Option(help="reference data, CSV or Parquet")] = None,
    target: Annotated[
        str | None, typer.Option(help="label column in the reference data (profiled, not an input)")
    ] = None,
    flavor: Annotated[str | None, typer.Option(help="force a flavor instead of detecting it")] = None,
    trust_pickle: Annotated[
        bool,
        typer.Option(
            "--trust-pickle",
            help="allow a model that can run code or crash when loaded: pickle/joblib, MLflow directories, skops types outside matchday's reviewed list",
        ),
    ] = False,
    proba: Annotated[str | None, typer.Option(help="module:function giving probabilities, for callables")] = None,
    alias: Annotated[str | None, typer.Option(help="point this alias at the new version")] = None,
    description: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Register a new version of NAME from PATH."""
    with out.status(f"registering {name}..."):
        record = default_workspace().registry.register(
            name,
            path,
            reference=reference,
            target=target,
            flavor=flavor,
            trust_pickle=trust_pickle,
            proba=proba,
            alias=alias,
            description=description,
        )
    out.print(
        f"registered [bold]{record.ref}[/] ({record.flavor}, sha256 {record.artifact_sha256[:12]}, "
        f"{len(record.signature['inputs'])} inputs, {record.signature['output']['task']})"
        + (f" as @{alias}" if alias else "")
    )


@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every registered model with its latest version and aliases."""
    models = default_workspace().registry.list_models()
    if as_json:
        out.print_json(
            data=[
                {
                    "name": m.name,
                    "latest_version": m.latest_version,
                    "aliases": m.aliases,
                    "created_at": m.created_at.isoformat(),
                }
                for m in models
            ]
        )
        return
    table = Table("model", "latest", "aliases", "created (UTC)")
    for m in models:
        aliases = ", ".join(f"@{a}→{v}" for a, v in sorted(m.aliases.items()))
        table.add_row(m.name, str(m.latest_version or "-"), aliases or "-", f"{m.created_at:%Y-%m-%d %H:%M}")
    out.print(
        table
        if models
        else "no models registered yet: try `matchday models register NAME PATH --reference data.parquet`"
    )


@models_app.command("show")
def models_show(ref: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A model's versions and alias history (NAME), or one version in detail (NAME:VERSION, NAME@ALIAS)."""
    registry = default_workspace().registry
    from matchday.registry import ModelRef, move_json, version_json

    parsed = ModelRef.parse(ref)
    if parsed.version is None and parsed.alias is None:
        versions = registry.list_versions(parsed.name)
        history = registry.alias_history(parsed.name)
        if as_json:
            out.print_json(
                data={
                    "name": parsed.name,
                    "versions": [version_json(v) for v in versions],
                    "alias_history": [move_json(m) for m in history],
                }
            )
            return
        table = Table("version", "flavor", "task", "inputs", "aliases", "sha256", "created (UTC)", title=parsed.name)
        for v in versions:
            table.add_row(
                str(v.version),
                v.flavor,
                v.signature["output"]["task"],
                str(len(v.signature["inputs"])),
                ", ".join("@" + a for a in v.aliases) or "-",
                v.artifact_sha256[:12],
                f"{v.created_at:%Y-%m-%d %H:%M}",
            )
        out.print(table)
        if history:
            moves = Table("when (UTC)", "alias", "from", "to", "reason", title="alias history")
            for m in history:
                moves.add_row(
                    f"{m.at:%Y-%m-%d %H:%M:%S}",
                    "@" + m.alias,
                    str(m.from_version or "-"),
                    str(m.to_version or "-"),
                    m.reason or "",
                )
            out.print(moves)
        return
    record = registry.get_version(parsed)
    profile = registry.get_profile(parsed)
    chain = registry.lineage_chain(record.ref) if record.lineage else []
    if as_json:
        out.print_json(
            data={
                **version_json(record),
                "signature": record.signature,
                "profile": profile,
                "lineage_chain": [_lineage_link(v) for v in chain],
            }
        )
        return
    out.print(
        f"[bold]{record.ref}[/]  flavor {record.flavor}  aliases {', '.join('@' + a for a in record.aliases) or '-'}"
    )
    out.print(f"artifact sha256 {record.artifact_sha256} ({record.artifact_size:,} bytes)")
    output = record.signature["output"]
    classes = f"  classes {output['classes']}" if output.get("classes") is not None else ""
    out.print(f"task {output['task']}{classes}; reference rows {profile['rows'] if profile else '-'}")
    table = Table("input", "type", "nullable", "range / categories", "reference mean ± std", title="signature")
    columns = (profile or {}).get("columns", {})
    for c in record.signature["inputs"]:
        span = f"{c['min']:.4g} … {c['max']:.4g}" if c.get("min") is not None else _short(c.get("categories"))
        stats = columns.get(c["name"], {})
        summary = (
            f"{stats['mean']:.4g} ± {stats['std']:.3g}"
            if "mean" in stats
            else (f"{stats.get('distinct', '-')} distinct" if stats else "-")
        )
        table.add_row(c["name"], c["type"], "yes" if c["nullable"] else "no", span, summary)
    out.print(table)
    if chain:
        lineage = Table("version", "parent", "trigger", "run", "gain", "rollout", "created (UTC)", title="lineage")
        for link in (_lineage_link(v) for v in chain):
            rollout = link["rollout"] or {}
            lineage.add_row(
                link["ref"],
                link["parent"] or "-",
                escape(link["trigger"] or "-"),
                str(link["run"]) if link["run"] is not None else "-",
                f"{link['gain']:+.4f}" if link["gain"] is not None else "-",
                f"{rollout['id']} ({rollout.get('state', '-')})" if rollout.get("id") is not None else "-",
                link["created_at"][:19].replace("T", " "),
            )
        out.print(lineage)


def _lineage_link(version: Any) -> dict[str, Any]:
    """One version of a lineage chain: where it came from (its parent, the run and what triggered it), how it
    did against its parent (the evaluation's gain) and the rollout it went through; an original version has
    none of these."""
    from matchday.retrain import trigger_text

    lineage = version.lineage or {}
    evaluation = lineage.get("evaluation") or {}
    trigger = lineage.get("trigger")
    return {
        "ref": version.ref,
        "parent": lineage.get("parent"),
        "run": lineage.get("run"),
        "trigger": trigger_text(trigger) if isinstance(trigger, dict) else None,
        "gain": evaluation.get("gain"),
        "accepted": evaluation.get("accepted"),
        "rollout": lineage.get("rollout"),
        "created_at": version.created_at.isoformat(),
    }


@models_app.command("alias")
def models_alias(
    name: str,
    version: int,
    alias: str,
    reason: Annotated[str | None, typer.Option(help="recorded in the alias history")] = None,
) -> None:
    """Point ALIAS of NAME at VERSION (the move is recorded)."""
    move = default_workspace().registry.set_alias(name, version, alias, reason or "set from the command line")
    previous = f"(was {move.from_version})" if move.from_version else "(new)"
    out.print(f"{name}@{alias} → version {move.to_version} {previous}")


@models_app.command("verify")
def models_verify(ref: str) -> None:
    """Check a version's artifact against its recorded sha256 and load it."""
    predictor = default_workspace().registry.load(ref)
    out.print(f"{predictor.ref}: artifact intact (sha256 matches), loads as {predictor.flavor}")


@models_app.command("delete")
def models_delete(
    ref: Annotated[str, typer.Argument(help="NAME (every version) or NAME:VERSION")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Delete a version or a whole model; artifacts no other version uses are removed."""
    registry = default_workspace().registry
    from matchday.registry import ModelRef

    parsed = ModelRef.parse(ref)
    what = (
        f"version {parsed.version} of {parsed.name}" if parsed.version else f"model {parsed.name} and all its versions"
    )
    if parsed.alias is None:
        registry.get_version(parsed) if parsed.version else registry.store.get_model(parsed.name)
    if not yes and not typer.confirm(f"delete {what}?"):
        raise typer.Exit(1)
    removed = registry.delete(ref, reason="deleted from the command line")
    out.print(f"deleted {', '.join(v.ref for v in removed) or parsed.name}")


deployments_app = typer.Typer(
    help="Deployments: named endpoints serving a model version or alias.", no_args_is_help=True
)
app.add_typer(deployments_app, name="deployments")


@app.command("deploy")
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
    table = Table("deployment", "serves", "version now", "max batch", "updated (UTC)")
    for d in deployments.list():
        try:
            now = traffic_split(deployments.route(d.name))
        except MatchdayError as exc:
            now = f"[red]{exc.message}[/]"
        table.add_row(d.name, d.model_ref, now, str(d.settings.get("max_batch_size")), f"{d.updated_at:%Y-%m-%d %H:%M}")
    out.print(table)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port, 1 to 65535")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="server processes (each with its own batching and log writer)")
    ] = 1,
    log_level: Annotated[str, typer.Option()] = "info",
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="start one `matchday worker` beside the server "
            "(monitoring, rollout controller, webhooks); --no-worker when it runs "
            "elsewhere",
        ),
    ] = True,
    access_log: Annotated[
        bool,
        typer.Option("--access-log/--no-access-log", help="log a line per request (off: it costs the request path)"),
    ] = False,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="listen beyond loopback although no user or token exists (anyone may act)"),
    ] = False,
) -> None:
    """Serve every deployment in the store over HTTP (own JSON, Open Inference Protocol V2, /metrics)."""
    from matchday.serving.listen import check_listen, is_loopback

    check_listen(host, port)  # a taken port is said (with who holds it) before anything starts or prints
    import uvicorn

    from matchday.worker import WorkerSupervisor

    ws = default_workspace()
    ws.database.upgrade()  # once, before the workers start
    if not is_loopback(host) and not ws.access.enforced():
        if not insecure:
            raise MatchdayError(
                f"refusing to listen on {host}: no user or token exists, so anyone who reaches the port could "
                "deploy, roll back and read everything. Create one first (matchday users add NAME --role admin, "
                "or matchday tokens create --role predictor --name ...), set MATCHDAY_AUTH=required, or pass "
                "--insecure to listen anyway"
            )
        import os

        err.print(f"[yellow]warning:[/] --insecure: listening on {host} with no credential: anyone may act")
        os.environ.setdefault("MATCHDAY_ALLOWED_HOSTS", "*")
    _ = ws.monitoring  # a monitor that cannot be checked stops here, with every reason, before anything starts
    _ = ws.retrain_policies  # and so does a retraining policy with a bad field
    if workers > 1:  # every worker writes its metrics here; /metrics sums them
        import os
        import shutil

        metrics_dir = (ws.settings.home / f"prometheus-{os.getpid()}").absolute()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    beside = "a worker beside it" if worker else "no worker (--no-worker: run `matchday worker` elsewhere)"
    out.print(
        f"serving on http://{host}:{port} ({workers} process{'es' if workers > 1 else ''}, {beside}); "
        "Ctrl-C stops, flushing the prediction log first"
    )
    supervisor = WorkerSupervisor().start() if worker else None
    try:
        uvicorn.run(
            "matchday.server:create_server_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            timeout_graceful_shutdown=30,
            access_log=access_log,
        )
    finally:
        if supervisor is not None:
            supervisor.stop()


@app.command("worker")
def worker_command(
    engine: Annotated[
        str | None,
        typer.Option(help="where trainers run: local (a child process) or ray (a Ray task); matchday.yaml's if absent"),
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="the Ray cluster for --engine ray (ray.init(address=...)); a local one if absent")
    ] = None,
) -> None:
    """Run the monitoring loop, the rollout controller, the webhook sender and retraining until stopped
    (SIGTERM, Ctrl-C).

    `matchday serve` starts one itself; run this beside `matchday serve --no-worker` replicas (one is enough:
    each loop runs under a leader lock, so more workers stand by).
    """
    import logging
    import os

    from matchday.worker import run_worker

    if engine is not None:
        if engine not in ("local", "ray"):
            raise typer.BadParameter(f"{engine!r}: local or ray", param_hint="--engine")
        os.environ["MATCHDAY_RETRAIN_ENGINE"] = engine  # the settings of this process (and its trainers' children)
    if ray_address is not None:
        os.environ["MATCHDAY_RAY_ADDRESS"] = ray_address
    ws = default_workspace()
    if ws.settings.retrain_engine == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise MatchdayError("--engine ray needs Ray in this environment: pip install 'matchday[ray]'")
    _ = ws.retrain_policies  # a bad retraining policy stops the worker here, with every bad field
    logging.basicConfig(
        level=os.environ.get("MATCHDAY_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    run_worker(ws)


rollout_app = typer.Typer(
    help="Move a deployment to a new version safely: canary, shadow, blue-green, A/B.", no_args_is_help=True
)
app.add_typer(rollout_app, name="rollout")


def traffic_split(plan: Any) -> str:
    """``fraud:2`` or ``fraud:1 90% / fraud:2 10%`` or ``fraud:1 (shadow fraud:2 100%)``."""
    if plan.candidate is None:
        return plan.primary.ref
    if plan.shadow_share:
        return f"{plan.primary.ref} (shadow {plan.candidate.ref} {plan.shadow_share:.0%})"
    share = plan.candidate_share
    return f"{plan.primary.ref} {1 - share:.0%} / {plan.candidate.ref} {share:.0%}"


@rollout_app.command("start")
def rollout_start(
    deployment: Annotated[str, typer.Argument(help="the deployment to move")],
    candidate: Annotated[str, typer.Argument(help="MODEL:VERSION (or MODEL@ALIAS, resolved now)")],
    strategy: Annotated[str | None, typer.Option(help="canary, shadow, bluegreen or ab")] = None,
    steps: Annotated[str | None, typer.Option(help="canary traffic shares in percent, e.g. 10,25,50,100")] = None,
    interval: Annotated[str | None, typer.Option(help="minimum time per step, e.g. 30s, 5m")] = None,
    min_requests: Annotated[int | None, typer.Option(help="rows each version must answer per step")] = None,
    failure_limit: Annotated[int | None, typer.Option(help="failed analyses tolerated before rollback")] = None,
    deadline: Annotated[str | None, typer.Option(help="an inconclusive step pauses after this long")] = None,
    fallback: Annotated[
        bool | None, typer.Option("--fallback/--no-fallback", help="answer the canary's failures with the baseline")
    ] = None,
    share: Annotated[float | None, typer.Option(help="shadow: percent mirrored; ab: percent to the candidate")] = None,
    gate: Annotated[
        list[str] | None, typer.Option("--gate", help="NAME=VALUE, e.g. max_error_rate_increase=0.02, labels=required")
    ] = None,
) -> None:
    """Start moving DEPLOYMENT to CANDIDATE; the server's controller takes it from there."""
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
    out.print(
        f"started [bold]{record.strategy}[/] rollout {record.id} on [bold]{deployment}[/]: "
        f"{record.baseline} -> {record.candidate}; candidate share now {record.weight:g}%"
    )
    out.print(f"the controller inside `matchday serve` moves it on; watch with `matchday rollout status {deployment}`")


@rollout_app.command("status")
def rollout_status(
    deployment: str,
    as_json: Annotated[bool, typer.Option("--json", help="everything, as JSON")] = False,
    events: Annotated[int, typer.Option(help="how many recent events to show")] = 10,
) -> None:
    """Where the rollout stands, the live numbers behind its next decision, and its recent events."""
    status = default_workspace().rollouts.status(deployment, events=events)
    if as_json:
        out.print_json(json.dumps(status.as_dict(), default=str))
        return
    r, plan = status.rollout, status.plan
    out.print(f"rollout {r.id} on [bold]{r.deployment}[/]: {r.strategy} {r.baseline} -> {r.candidate}")
    where = f"step {r.step + 1}/{len(plan.steps)}, " if r.strategy == "canary" else ""
    if r.phase == "shadow":  # a canary's shadow_first: mirrored, answering nothing yet
        where = f"shadowing {plan.shadow_first or 0:g}s before step 1/{len(plan.steps)}, "
    out.print(
        f"state [bold]{r.state}[/] ({r.phase}), {where}candidate share {r.weight:g}%, "
        f"failed analyses {r.failures}/{plan.failure_limit + 1}"
    )
    if r.reason:
        out.print(f"reason: {r.reason}")
    report = status.report or {}
    if "gates" in report:
        table = Table("gate", "outcome", "detail", title=f"analysis of the current window: {report['outcome']}")
        colour = {"pass": "green", "fail": "red", "inconclusive": "yellow", "skipped": "dim"}
        for g in report["gates"]:
            table.add_row(g["name"], f"[{colour[g['outcome']]}]{g['outcome']}[/]", g["detail"])
        out.print(table)
        if report.get("shadow"):
            out.print(_shadow_line(report["shadow"]))
    elif "baseline" in report:
        table = Table("version", "rows", "error rate", "p50 ms", "p99 ms", "labelled", report["baseline"]["metric"])
        for arm in (report["baseline"], report["candidate"]):
            table.add_row(
                f"{arm['model']}:{arm['version']}",
                str(arm["requests"]),
                _pct(arm["error_rate"]),
                _ms(arm["latency_p50_seconds"]),
                _ms(arm["latency_p99_seconds"]),
                str(arm["labelled"]),
                _num(arm["metric_value"]),
            )
        out.print(table)
    elif "agreement" in report:
        out.print(_shadow_line(report))
    if status.events:
        table = Table("at (UTC)", "event", "by", "reason", title="events")
        for e in status.events:
            table.add_row(f"{e.at:%H:%M:%S}", e.kind, e.actor, e.reason)
        out.print(table)


def _shadow_line(report: dict[str, Any]) -> str:
    return (
        f"shadow {report['model']}:{report['version']}: {report['requests']} rows mirrored, error rate "
        f"{_pct(report['error_rate'])}, p99 {_ms(report['latency_p99_seconds'])} ms, agreement with the "
        f"primary {_pct(report['agreement'])} on {report['compared']} rows; {report['metric']} "
        f"{_num(report['shadow_metric'])} vs primary {_num(report['primary_metric'])} on "
        f"{report['labelled']} labelled rows"
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _rollout_action(action: str, deployment: str, reason: str | None) -> None:
    ws = default_workspace()
    record = getattr(ws.rollouts, action)(deployment, local_actor(), reason)
    out.print(
        f"rollout {record.id} on [bold]{deployment}[/]: {record.state}{f' ({record.reason})' if record.reason else ''}"
    )


@rollout_app.command("promote")
def rollout_promote(deployment: str, reason: Annotated[str | None, typer.Option()] = None) -> None:
    """Make the candidate the deployment's version now (moves its alias, or repoints it)."""
    _rollout_action("promote", deployment, reason)


@rollout_app.command("rollback")
def rollout_rollback(deployment: str, reason: Annotated[str | None, typer.Option()] = None) -> None:
    """All traffic back to the baseline now; the rollout ends (also: abort)."""
    _rollout_action("rollback", deployment, reason)


@rollout_app.command("abort", hidden=True)
def rollout_abort(deployment: str, reason: Annotated[str | None, typer.Option()] = None) -> None:
    _rollout_action("rollback", deployment, reason)


@rollout_app.command("pause")
def rollout_pause(deployment: str, reason: Annotated[str | None, typer.Option()] = None) -> None:
    """Hold the traffic split where it is until resume, promote or rollback."""
    _rollout_action("pause", deployment, reason)


@rollout_app.command("resume")
def rollout_resume(deployment: str, reason: Annotated[str | None, typer.Option()] = None) -> None:
    """Continue a paused rollout; its step starts a fresh window."""
    _rollout_action("resume", deployment, reason)


@rollout_app.command("history")
def rollout_history(deployment: str, limit: int = 20) -> None:
    """Past and present rollouts of DEPLOYMENT."""
    table = Table("id", "strategy", "baseline", "candidate", "state", "started (UTC)", "finished", "reason")
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
    out.print(table)


@app.command("events")
def events(
    deployment: Annotated[str | None, typer.Argument(help="one deployment's events (default: all)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """The audit trail, newest first: rollout decisions, tokens and users made and revoked, and who did each."""
    table = Table("at (UTC)", "deployment", "kind", "actor", "reason")
    for e in default_workspace().rollouts.list_events(deployment, limit):
        table.add_row(f"{e.at:%Y-%m-%d %H:%M:%S}", e.deployment or "", e.kind, e.actor, e.reason)
    out.print(table)


# -- monitoring ----------------------------------------------------------------------------------
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


@app.command("metrics")
def metrics(
    deployment: str,
    window: Annotated[str, typer.Option(help="5m, 1h, 1d, or the window by count (e.g. 1000rows)")] = "5m",
    metric: Annotated[list[str] | None, typer.Option("--metric", "-m", help="metrics to show (repeat)")] = None,
    segment: Annotated[str, typer.Option(help="a segment, e.g. country=DE")] = "",
    last: Annotated[int, typer.Option(help="newest windows to show")] = 12,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The monitoring windows of DEPLOYMENT: one row per window, newest last."""
    from matchday.monitoring import TIME_WIDTHS, count_width, known_metric

    ws = default_workspace()
    ws.deployments.get(deployment)
    count = count_width(ws.settings.monitoring.count_window)
    if window not in TIME_WIDTHS and not re.fullmatch(r"[1-9]\d*rows", window):
        raise MatchdayError(f"unknown window {window!r}; one of {', '.join([*TIME_WIDTHS, count])}")
    names = list(metric or METRIC_COLUMNS)
    for name in names:
        if not known_metric(name):
            raise MatchdayError(f"unknown metric {name!r}")
    windows = ws.monitoring.windows.series(deployment, window, segment=segment)[-last:]
    if as_json:
        print(
            json.dumps(
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
                ],
                indent=2,
            )
        )
        return
    if not windows:
        out.print(f"no {window} windows for {deployment} yet (the server summarises the log every few seconds)")
        return
    table = Table(
        "window (UTC)",
        "version",
        *names,
        "diagnosis",
        title=f"{deployment}, {window} windows" + (f", {segment}" if segment else ""),
    )
    for w in windows:
        start = f"{w.start:%m-%d %H:%M}" if window in TIME_WIDTHS else f"{w.start:%m-%d %H:%M:%S}"
        table.add_row(start, str(w.version), *[_metric(n, w.metrics.get(n)) for n in names], ws.monitoring.diagnosis(w))
    out.print(table)


def _metric(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name in ("rows", "requests", "labelled", "drifted_features"):
        return f"{value:,.0f}"
    if name.startswith("latency"):
        return f"{value * 1000:.1f} ms"
    return f"{value:.3f}"


@app.command("monitors")
def monitors(deployment: Annotated[str | None, typer.Argument()] = None) -> None:
    """The monitors watching each deployment (matchday.yaml and the defaults), and which are firing."""
    ws = default_workspace()
    loop = ws.monitoring
    names = [d.name for d in ws.deployments.list() if deployment is None or d.name == deployment]
    if deployment is not None and not names:
        ws.deployments.get(deployment)
    firing = {(a.monitor, a.deployment) for a in loop.engine.alerts.firing()}
    declared = {m.name for m in loop.monitors}
    table = Table(
        "deployment", "monitor", "metric", "window", "condition", "breaches", "severity", "actions", "from", "state"
    )
    for name in names:
        for m in loop.monitors_of(name):
            condition = f"{m.when} vs {m.relative_to}" if m.relative_to else m.when
            table.add_row(
                name,
                m.name,
                m.metric + (f" by {m.segment}" if m.segment else ""),
                m.window,
                condition,
                str(m.breaches),
                m.severity,
                ", ".join(a.kind for a in m.actions),
                "matchday.yaml" if m.name in declared else "default",
                "[red]firing[/red]" if (m.name, name) in firing else "ok",
            )
    out.print(table)


@app.command("alerts")
def alerts(
    deployment: Annotated[str | None, typer.Argument()] = None,
    firing: Annotated[bool, typer.Option("--firing", help="only alerts firing now")] = False,
    limit: int = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Alerts, newest first: firing and resolved, with the monitor and the value behind each."""
    from matchday.monitoring import alert_body

    ws = default_workspace()
    if deployment is not None:
        ws.deployments.get(deployment)
    records = ws.monitoring.engine.alerts.list(deployment, state="firing" if firing else None, limit=limit)
    if as_json:
        print(json.dumps([alert_body(a, a.state)["alert"] for a in records], indent=2))
        return
    table = Table(
        "id", "deployment", "monitor", "severity", "state", "metric", "value", "condition", "opened (UTC)", "resolved"
    )
    for a in records:
        state = "[red]firing[/red]" if a.state == "firing" else "resolved"
        condition = str(a.data.get("condition", "")) + (
            f" vs {a.data['relative_to']}" if a.data.get("relative_to") else ""
        )
        table.add_row(
            str(a.id),
            a.deployment + (f" [{a.segment}]" if a.segment else ""),
            a.monitor,
            a.severity,
            state,
            a.metric,
            _metric(a.metric, a.value),
            condition,
            f"{a.opened_at:%m-%d %H:%M:%S}",
            f"{a.resolved_at:%H:%M:%S}" if a.resolved_at else "",
        )
    out.print(table)


log_app = typer.Typer(
    help="The prediction log: what every deployment answered, for notebooks and warehouses.", no_args_is_help=True
)
app.add_typer(log_app, name="log")


def _utc_time(text: str | None, option: str) -> Any:
    """An ISO 8601 time as an aware UTC datetime; a time without a zone is taken as UTC."""
    from datetime import UTC, datetime

    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-12-01 or 2026-12-01T09:30:00Z)", param_hint=option
        ) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@log_app.command("export")
def log_export(
    name: Annotated[str, typer.Argument(help="the deployment")],
    output: Annotated[Path, typer.Argument(help="the Parquet file to write")],
    since: Annotated[str | None, typer.Option(help="from this ISO time on (UTC if no zone is given)")] = None,
    until: Annotated[str | None, typer.Option(help="before this ISO time (UTC if no zone is given)")] = None,
) -> None:
    """Write one row per logged prediction of deployment NAME to a Parquet file."""
    from matchday.monitoring import export_log
    from matchday.registry import ModelRef

    start, end = _utc_time(since, "--since"), _utc_time(until, "--until")
    if start is not None and end is not None and end <= start:
        raise typer.BadParameter(f"--until ({until}) must come after --since ({since})")
    if not output.parent.is_dir():
        raise typer.BadParameter(f"{output.parent} is not a directory", param_hint="OUTPUT")
    ws = default_workspace()
    ws.deployments.get(name)  # a clear "no deployment named ..." before anything is written
    classes: dict[tuple[str, int], Any] = {}

    def classes_of(model: str, version: int) -> Any:
        if (model, version) not in classes:
            try:
                signature = ws.registry.get_signature(ModelRef(model, version=version))
                classes[model, version] = signature.output.classes
            except MatchdayError:  # a version deleted since it answered: no probability columns for it
                classes[model, version] = None
        return classes[model, version]

    with out.status(f"exporting the log of {name}..."):
        summary = export_log(ws.prediction_log, name, output, classes_of, start, end)
    out.print(f"wrote {summary.rows:,} rows x {len(summary.columns)} columns to {summary.path}")


DRIFT_EXIT_CODE = 3


class _DriftOptions(TypedDict):
    """What `drift` passes to `compare_parquet_files` or `compare_tables` (the same for both)."""

    columns: list[str] | None
    tests: dict[str, ColumnTest]
    share_threshold: float
    multivariate: bool


@app.command("drift")
def drift(
    reference: Annotated[Path, typer.Argument(help="reference data, CSV or Parquet")],
    current: Annotated[Path, typer.Argument(help="current data, CSV or Parquet")],
    html: Annotated[Path | None, typer.Option("--html", help="write a self-contained HTML report here")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the full result as JSON here")] = None,
    columns: Annotated[str | None, typer.Option(help="comma-separated columns to compare (default: all)")] = None,
    test: Annotated[
        list[str] | None,
        typer.Option(
            "--test",
            help="COLUMN=TEST[:THRESHOLD], TEST one of ks, wasserstein, psi, jensenshannon, chisquare, z, unseen",
        ),
    ] = None,
    share_threshold: Annotated[
        float, typer.Option(help="dataset drift when at least this share of columns drifted")
    ] = 0.5,
    multivariate: Annotated[
        bool, typer.Option("--multivariate", help="also train a domain classifier (ROC AUC)")
    ] = False,
) -> None:
    """Compare two files column by column; exit code 3 when the dataset drifted (for CI gates)."""
    from matchday.monitoring import ColumnTest, DriftError, compare_parquet_files, compare_tables, render_html
    from matchday.registry import read_table_file

    overrides: dict[str, ColumnTest] = {}
    for spec in test or []:
        column, _, rest = spec.partition("=")
        name, _, threshold = rest.partition(":")
        try:
            overrides[column] = ColumnTest(name or None, float(threshold) if threshold else None)  # type: ignore[arg-type]
        except ValueError as exc:
            raise DriftError(f"--test {spec!r}: the threshold must be a number") from exc
        if not column or not name:
            raise DriftError(f"--test {spec!r}: expected COLUMN=TEST[:THRESHOLD]")
    options: _DriftOptions = {
        "columns": columns.split(",") if columns else None,
        "tests": overrides,
        "share_threshold": share_threshold,
        "multivariate": multivariate,
    }
    parquet = {".parquet", ".pq"}
    if (
        reference.suffix.lower() in parquet
        and current.suffix.lower() in parquet
        and reference.is_file()
        and current.is_file()
    ):
        with out.status("comparing column by column..."):
            try:
                report = compare_parquet_files(str(reference), str(current), **options)
            except (OSError, ValueError) as exc:  # pyarrow's errors for files that are not Parquet
                raise DriftError(f"could not read {reference.name} or {current.name} as Parquet: {exc}") from exc
    else:
        with out.status("reading..."):
            ref_table, cur_table = read_table_file(reference), read_table_file(current)
        with out.status("comparing..."):
            report = compare_tables(ref_table, cur_table, **options)
    table = Table(
        "column",
        "type",
        "test",
        "statistic",
        "p-value",
        "threshold",
        "drift",
        "missing",
        title=f"{reference.name} ({report.reference_rows:,} rows) vs {current.name} ({report.current_rows:,} rows)",
    )
    for c in report.columns.values():
        table.add_row(
            c.column,
            c.kind,
            c.test,
            f"{c.statistic:.4g}",
            "" if c.p_value is None else f"{c.p_value:.3g}",
            f"{c.threshold:g}",
            "[red]drift[/]" if c.drifted else "[green]ok[/]",
            f"{c.missing_share:.1%}",
        )
    out.print(table)
    if report.multivariate:
        m = report.multivariate
        out.print(
            f"domain classifier ROC AUC {m['roc_auc']:.3f} (threshold {m['threshold']}): "
            + ("[red]drift[/]" if m["drifted"] else "[green]ok[/]")
        )
    verdict = "[red]dataset drift[/]" if report.dataset_drift else "[green]no dataset drift[/]"
    out.print(
        f"{verdict}: {len(report.drifted_columns)} of {len(report.columns)} columns drifted "
        f"(share {report.drift_share:.2f}, threshold {report.share_threshold:.2f})"
    )
    if html:
        html.write_text(render_html(report, reference_name=reference.name, current_name=current.name))
        out.print(f"HTML report: {html}")
    if json_out:
        json_out.write_text(json.dumps(_nan_to_none(report.to_dict()), indent=2, default=str, allow_nan=False))
        out.print(f"JSON: {json_out}")
    if report.dataset_drift:
        raise typer.Exit(DRIFT_EXIT_CODE)


def _nan_to_none(value: Any) -> Any:
    """JSON has no NaN or infinity: a statistic that could not be computed is null."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


@app.command("demo")
def demo(
    serve: Annotated[
        bool,
        typer.Option(
            "--serve/--no-serve",
            envvar="MATCHDAY_DEMO_SERVE",
            help="end by serving the dashboard until Ctrl-C (--no-serve: exit)",
        ),
    ] = True,
    port: Annotated[int, typer.Option(help="the dashboard's port (a free one if it is taken)")] = 8000,
) -> None:
    """Run the demo scenario (what `make demo` runs); it ends with the dashboard's address."""
    from matchday.demo import run

    run(out, serve=serve, port=port)


def _short(values: list[Any] | None, limit: int = 6) -> str:
    if values is None:
        return "-"
    text = ", ".join(map(str, values[:limit]))
    return text + (f", … ({len(values)})" if len(values) > limit else "")


def main(argv: list[str] | None = None) -> None:
    """Entry point: our errors become one red line and exit code 1, never a traceback.

    ``argv`` (default: ``sys.argv[1:]``) lets the tests run a command in-process exactly as the console script does.
    """
    try:
        code = app(args=argv, prog_name="matchday" if argv is not None else None, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except MatchdayError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, markup=True)
        sys.exit(1)
    except typer.Abort:
        err.print("aborted")
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # usage errors (a mistyped command, a bad option) come through here
        if _is_click_exception(exc):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        raise


def _is_click_exception(exc: Exception) -> bool:
    """Click's own, or the copy newer Typer versions bundle: both have ``show`` and an ``exit_code``."""
    return any(
        cls.__name__ == "ClickException" and cls.__module__.endswith("click.exceptions") for cls in type(exc).__mro__
    )
