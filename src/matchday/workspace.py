"""A workspace: the settings resolved into one open store and registry, shared by CLI and API."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matchday.auth import Access
from matchday.batch import BatchScoring
from matchday.config import Settings, load_settings
from matchday.monitoring import (
    AlertEngine,
    InvalidMonitor,
    LogProcess,
    LogWriter,
    MonitoringLoop,
    MonitorSpec,
    PredictionLogWriter,
    Summarizer,
    SummarizerConfig,
    VersionReference,
    WebhookSender,
    known_metric,
    parse_monitors,
)
from matchday.registry import ArtifactStore, Registry, Signature
from matchday.retrain import (
    Retraining,
    RetrainPolicy,
    RunParts,
    Simulation,
    engine_named,
    parse_policies,
    past_run,
    simulate,
)
from matchday.review import Automation, AutomationLevel, AutomationPolicy, ReviewMonitors, ReviewQueue, policy_of
from matchday.rollout import Deployments, NothingToDo, Rollouts
from matchday.store import (
    AlertRecord,
    AlertStore,
    Database,
    DeploymentStore,
    EdgeDeviceStore,
    EventStore,
    ModelStore,
    MonitorStateStore,
    NotFound,
    PredictionLogStore,
    PrincipalStore,
    RetrainStore,
    ReviewStore,
    RolloutStore,
    WebhookOutbox,
    WindowStore,
)

if TYPE_CHECKING:
    from matchday.edge import BundleSigner, EdgeTelemetry


class Workspace:
    """Opens the database (applying migrations) and the artifact store on first use."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()

    @cached_property
    def database(self) -> Database:
        return Database(self.settings.resolved_database_url)

    @cached_property
    def registry(self) -> Registry:
        return Registry(
            ModelStore(self.database),
            ArtifactStore(self.settings.resolved_artifact_url),
            cache_dir=(self.settings.home / "cache").absolute(),
        )

    @cached_property
    def access(self) -> Access:
        """Users, tokens and sessions: who may do what (the server keeps the tokens in memory)."""
        return Access(PrincipalStore(self.database), EventStore(self.database), self.settings.auth)

    @cached_property
    def deployments(self) -> Deployments:
        return Deployments(DeploymentStore(self.database), self.registry, RolloutStore(self.database))

    @cached_property
    def rollouts(self) -> Rollouts:
        return Rollouts(
            RolloutStore(self.database),
            EventStore(self.database),
            self.deployments,
            self.registry,
            self.prediction_log,
            self.settings.rollouts,
        )

    @cached_property
    def monitoring(self) -> MonitoringLoop:
        """The monitoring loop over this workspace's log, with its actions wired to rollouts and events."""
        return build_monitoring(self)

    @cached_property
    def prediction_log(self) -> PredictionLogStore:
        """The log's reads and idempotent writes (the server writes through `log_writer`)."""
        return PredictionLogStore(self.database)

    def log_writer(self) -> PredictionLogWriter:
        """A new, not yet started, batched writer to this log, spooling under ``home/spool``: one per process."""
        return PredictionLogWriter(self.prediction_log, self.spool_dir)

    @property
    def spool_dir(self) -> Path:
        return spool_dir_of(self.settings)

    def server_log_writer(self) -> LogWriter:
        """The writer a serving process logs through: in a process of its own unless the settings say not."""
        if not self.settings.log_process:
            return self.log_writer()
        return LogProcess(partial(open_log_writer, self.settings), self.spool_dir)

    @cached_property
    def batch(self) -> BatchScoring:
        """Batch scoring of files with this registry's versions, feeding this log when asked (``--deployment``)."""
        return BatchScoring(self.registry, self.prediction_log, self.deployments.get)

    @cached_property
    def alerts(self) -> AlertStore:
        return AlertStore(self.database)

    @cached_property
    def windows(self) -> WindowStore:
        return WindowStore(self.database)

    @cached_property
    def monitor_state(self) -> MonitorStateStore:
        return MonitorStateStore(self.database)

    @cached_property
    def review(self) -> ReviewQueue:
        """The review queue: people's decisions on queued answers, joined to the log as labels."""
        return ReviewQueue(ReviewStore(self.database), self.prediction_log, self.registry, self.webhooks.enqueue)

    @cached_property
    def review_monitors(self) -> ReviewMonitors:
        """Deadline misses and falling agreement, for every deployment with a review policy."""

        def policies() -> list[tuple[str, AutomationPolicy]]:
            found = []
            for d in self.deployments.list():
                stored = d.settings.get("automation")
                if stored:
                    found.append((d.name, policy_of(stored)))
            return found

        return ReviewMonitors(ReviewStore(self.database), self.alerts, policies)

    @cached_property
    def automation(self) -> Automation:
        """Each deployment's automation level and review policy: set (an event), checked, suggested."""

        def served(name: str) -> tuple[Signature, list[str] | None]:
            primary = self.deployments.route(name).primary
            version = self.registry.get_version(f"{primary.model}:{primary.version}")
            signature = Signature.model_validate(version.signature)
            classes = signature.output.classes
            return signature, [str(c) for c in classes] if classes else None

        def record(deployment: str, kind: str, actor: str, reason: str, data: dict[str, Any]) -> None:
            self.events.add(kind, actor, reason, data, deployment=deployment)

        return Automation(
            read=lambda name: dict(self.deployments.get(name).settings.get("automation") or {}),
            write=lambda name, policy: self.deployments.update_settings(name, {"automation": policy}),
            served=served,
            record=record,
            store=ReviewStore(self.database),
            critical_alerts=lambda name: [a.message for a in self.alerts.firing(name) if a.severity == "critical"],
        )

    @cached_property
    def retrain_policies(self) -> dict[str, RetrainPolicy]:
        """matchday.yaml's ``retrain:`` policies, every bad field reported at once (names checked against
        the monitors that watch each deployment)."""
        return parse_policies(self.settings.retrain, lambda name: [m.name for m in self.monitoring.monitors_of(name)])

    @cached_property
    def retraining(self) -> Retraining:
        """Retraining runs: triggered by alerts or a schedule, trained, judged, rolled out (the worker's round)."""
        parts = RunParts(
            store=RetrainStore(self.database),
            registry=self.registry,
            deployments=self.deployments,
            rollouts=self.rollouts,
            log=self.prediction_log,
            engine=engine_named(self.settings.retrain_engine, self.settings.ray_address),
            home=self.settings.home.absolute(),
            human_governed=self._human_governed,
        )
        return Retraining(self.retrain_policies, parts, self.alerts.firing, self.events)

    def _human_governed(self, deployment: str) -> bool:
        """Whether people govern the deployment's answers (then a retrained candidate waits for one, too)."""
        policy = self.automation.policy(deployment)
        return policy is not None and policy.level in HUMAN_GOVERNED

    def simulate_retraining(self, deployment: str, since: datetime, until: datetime | None = None) -> Simulation:
        """`matchday retrain simulate`: the policy replayed over the deployment's stored windows."""
        policy = self.retraining.policy(deployment)
        monitors = {m.name: m for m in self.monitoring.monitors_of(deployment)}

        def verdicts(name: str, start: datetime) -> list[tuple[datetime, bool | None, float | None]]:
            monitor = monitors[name]
            out: list[tuple[datetime, bool | None, float | None]] = []
            for window in self.windows.series(deployment, monitor.window, since=start, segment=""):
                verdict = self.monitoring.verdict(monitor, window)
                out.append((window.end, verdict.breached, verdict.compared))
            return out

        return simulate(
            deployment,
            policy,
            {name: monitors[name].breaches for name in policy.triggers.monitors},
            verdicts,
            lambda *a, **k: self.prediction_log.count_labelled(*a, **k),
            since,
            until or datetime.now(UTC),
            [past_run(r) for r in self.retraining.runs(deployment, limit=50)],
        )

    @cached_property
    def events(self) -> EventStore:
        return EventStore(self.database)

    @cached_property
    def edge_telemetry(self) -> EdgeTelemetry:
        """Edge devices (each with a token) and their telemetry syncs into the prediction log."""
        from matchday.edge import EdgeTelemetry  # the edge part (its ONNX export too) only where it is used

        return EdgeTelemetry(
            EdgeDeviceStore(self.database),
            DeploymentStore(self.database),
            self.registry,
            self.prediction_log,
            self.access,
            self.events,
        )

    @cached_property
    def edge_signer(self) -> BundleSigner:
        """The Ed25519 key edge bundles are signed with (made 0600 under home on first use); devices pin its public half."""
        from matchday.edge import BundleSigner

        return BundleSigner(self.settings.home.absolute() / "keys" / "edge-signing.pem")

    @cached_property
    def webhooks(self) -> WebhookSender:
        return WebhookSender(WebhookOutbox(self.database))

    def close(self) -> None:
        if "webhooks" in self.__dict__ and self.webhooks.running:
            self.webhooks.close()
        if "access" in self.__dict__:
            self.access.close()
        if "database" in self.__dict__:
            self.database.dispose()


def spool_dir_of(settings: Settings) -> Path:
    """Where the prediction log's writers keep their journals."""
    return settings.home.absolute() / "spool"


@contextmanager
def open_log_writer(settings: Settings) -> Iterator[PredictionLogWriter]:
    """A writer for the log process (`LogProcess`) to run. Its database is not migrated (the server did)
    and not even reached here: the process starts, and journals, while the database is away."""
    database = Database(settings.resolved_database_url, migrate=False)
    try:
        yield PredictionLogWriter(PredictionLogStore(database), spool_dir_of(settings))
    finally:
        database.dispose()


HUMAN_GOVERNED = (
    AutomationLevel.HUMAN_LED,
    AutomationLevel.HUMAN_LED_MACHINE_SUPPORTED,
    AutomationLevel.MACHINE_LED_HUMAN_GOVERNED,
)
log = logging.getLogger("matchday.monitoring")
_default: Workspace | None = None
_lock = threading.Lock()


def default_workspace() -> Workspace:
    """The workspace the environment describes; reopened if ``MATCHDAY_*`` settings changed."""
    global _default
    settings = load_settings()
    with _lock:
        if _default is None or _default.settings != settings:
            if _default is not None:
                _default.close()
            _default = Workspace(settings)
        return _default


def version_reference(registry: Registry, model: str, version: int) -> VersionReference:
    """What monitoring needs of a registered version: task, classes, inputs, reference profile."""
    ref = f"{model}:{version}"
    signature = registry.get_signature(ref)
    classes = [str(c) for c in signature.output.classes] if signature.output.classes else None
    return VersionReference.from_profile(
        signature.output.task, classes, list(signature.input_names), registry.get_profile(ref)
    )


def build_monitoring(ws: Workspace) -> MonitoringLoop:
    """Summarizer, monitors and alert engine over ``ws``; actions call rollouts and write events."""
    db = ws.database
    config = ws.settings.monitoring
    summarizer = Summarizer(
        ws.prediction_log,
        ws.windows,
        ws.monitor_state,
        lambda model, version: version_reference(ws.registry, model, version),
        SummarizerConfig(
            count_window=config.count_window,
            segments=dict(config.segments),
            max_segment_values=config.max_segment_values,
            concept_drift=dict(config.concept_drift),
            images=dict(config.images),
            texts=dict(config.texts),
        ),
    )
    events = EventStore(db)

    def rollback(deployment: str, alert: AlertRecord) -> None:
        """Roll back the rollout in progress if the alert is on its candidate (a baseline alert is not its fault)."""
        try:
            current = ws.rollouts.active(deployment)
            if current.candidate != f"{alert.model}:{alert.version}":
                raise NothingToDo(f"the rollout of {deployment} is not of {alert.model}:{alert.version}")
            ws.rollouts.rollback(
                deployment,
                actor="monitor",
                reason=f"alert {alert.id}: {alert.message}",
                data={"alert": alert.id, "monitor": alert.monitor, "value": alert.value},
            )
        except NothingToDo as exc:
            log.info("alert %s asks for a rollback of %s: nothing to roll back (%s)", alert.id, deployment, exc)

    def hook(kind: str) -> Callable[[str, AlertRecord], None]:
        def act(deployment: str, alert: AlertRecord) -> None:  # review and retrain come later: recorded for them
            events.add(
                f"{kind}_requested",
                "monitor",
                f"alert {alert.id}: {alert.message}",
                {"alert": alert.id, "monitor": alert.monitor},
                deployment=deployment,
            )

        return act

    def record(deployment: str, kind: str, reason: str, data: dict[str, Any]) -> None:
        events.add(kind, "monitor", reason, data, deployment=deployment)

    def review(deployment: str, alert: AlertRecord) -> None:
        """Recorded; and a deployment whose policy says so moves one level toward people on a critical alert."""
        hook("review")(deployment, alert)
        policy = ws.automation.policy(deployment)
        if policy is not None and policy.step_down_on_critical and alert.severity == "critical":
            ws.automation.step_down_on_alert(deployment, f"alert {alert.id}: {alert.message}")

    def retrain(deployment: str, alert: AlertRecord) -> None:
        """A run of the deployment's retraining policy, if the guards allow it now; recorded either way."""
        hook("retrain")(deployment, alert)
        if deployment in ws.retrain_policies:
            ws.retraining.on_alert(deployment, alert)

    engine = AlertEngine(
        ws.alerts,
        ws.monitor_state,
        enqueue_webhook=ws.webhooks.enqueue,
        hooks={"rollback": rollback, "review": review, "retrain": retrain},
        record_event=record,
    )
    monitors = parse_monitors(ws.settings.monitors, count_window=config.count_window)
    _check_features(ws, monitors)
    return MonitoringLoop(summarizer, ws.windows, ws.monitor_state, engine, monitors)


def _check_features(ws: Workspace, monitors: list[MonitorSpec]) -> None:
    """A monitor naming one deployment must name features and classes its model has (a typo is not a quiet monitor)."""
    problems = []
    for m in monitors:
        kind, _, name = m.metric.partition(".")
        if m.deployment is None or not (name or m.segment):
            continue
        try:
            record = ws.deployments.get(m.deployment)
            signature = ws.registry.get_signature(str(ws.registry.resolve(record.model_ref)))
        except NotFound:
            continue  # a deployment that does not exist yet: checked when it does (its windows never match)
        features = list(signature.input_names)
        classes = [str(c) for c in signature.output.classes or []]
        if name and not known_metric(m.metric, features, classes or None):
            what = "class" if kind == "class_share" else "input feature"
            problems.append(
                f"monitor {m.name}: {m.deployment} has no {what} {name!r} "
                f"({', '.join(classes if kind == 'class_share' else features)})"
            )
        if m.segment and m.segment not in features:
            problems.append(f"monitor {m.name}: {m.deployment} has no input feature {m.segment!r} to segment by")
    if problems:
        raise InvalidMonitor("invalid monitors in matchday.yaml", problems)
