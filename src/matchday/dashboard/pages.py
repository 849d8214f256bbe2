"""What each dashboard page shows, assembled in plain Python from the other parts' public faces.

Pages read the stored windows (the monitoring loop's summaries), the registry, rollouts, events and
alerts; never the prediction log's rows, so they load as fast with a million logged predictions as
with a thousand. Nothing here knows HTTP: `routes` renders what these methods return.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from matchday.dashboard.charts import (
    SHARE,
    ZERO_TO_ONE,
    chart_events,
    class_metrics,
    drift_heatmap,
    histogram_chart,
    quantile_bins,
    series_chart,
    source_chart,
    version_of,
)
from matchday.dashboard.errors import BadTimeRange, PageNotFound, PageUnavailable
from matchday.dashboard.plans import describe_plan
from matchday.dashboard.retraining import (
    RUN_ACTIONS,
    lineage_rows,
    model_link,
    policy_row,
    run_row,
    snapshot_window,
    step_rows,
)
from matchday.dashboard.timerange import TimeRange
from matchday.monitoring import (
    DEVICE_SEGMENT,
    SOURCE_SEGMENT,
    TIME_WIDTHS,
    DriftError,
    MonitoringLoop,
    MonitorSpec,
    TableSummary,
    compare_summary_to_profile,
    label_text,
    merge_summaries,
    parse_window,
    unkept_window,
    window_names,
)
from matchday.registry import Registry
from matchday.retrain import InvalidPolicy, Retraining, RetrainRunRecord
from matchday.review import ACTIONS as REVIEW_ACTIONS
from matchday.review import Automation, ReviewError, ReviewQueue, item_json
from matchday.rollout import Deployments, NothingToDo, Rollouts
from matchday.store import AlertRecord, AlertStore, MetricWindow, NotFound, ReviewItemRecord, RolloutNotFound
from matchday.workspace import Workspace

if TYPE_CHECKING:
    from matchday.edge import EdgeTelemetry

ACTIONS = ("promote", "rollback", "pause", "resume")
# what a button or title says: "rollback" is the noun (and the action's address), "roll back" the verb
ACTION_VERBS = {"promote": "promote", "rollback": "roll back", "pause": "pause", "resume": "resume"}
RECENT = timedelta(minutes=15)  # a deployment with no window ending since then is idle
MAX_WINDOWS = 2000


class AlertEntry(TypedDict):
    """One row of the alerts page: the alert and the monitor that raised it (None if no longer configured)."""

    alert: AlertRecord
    monitor: MonitorSpec | None


@dataclass
class DashboardPages:
    """The page service: one instance per app, built over the same parts the API uses."""

    deployments: Deployments
    rollouts: Rollouts
    registry: Registry
    monitoring: MonitoringLoop
    alert_store: AlertStore
    review: ReviewQueue | None = None  # the review queue pages need both; built from a workspace, they have them
    automation: Automation | None = None
    # built on the first retraining page: a policy that does not read is that page's problem, not every page's
    retraining: Callable[[], Retraining] | None = None
    edge: Callable[[], EdgeTelemetry] | None = None  # registered edge devices (the devices page, the device filter)

    @classmethod
    def from_workspace(cls, ws: Workspace) -> DashboardPages:
        return cls(
            ws.deployments,
            ws.rollouts,
            ws.registry,
            ws.monitoring,
            ws.alerts,
            ws.review,
            ws.automation,
            lambda: ws.retraining,
            lambda: ws.edge_telemetry,
        )

    # -- overview ------------------------------------------------------------------------------
    def overview(self, now: datetime | None = None) -> dict[str, Any]:
        """Every deployment: its versions and split, health from its newest windows, alerts, rollout."""
        now = now or datetime.now(UTC)
        latest: dict[str, list[MetricWindow]] = {}
        for w in self.monitoring.windows.latest("5m", now - RECENT):
            latest.setdefault(w.deployment, []).append(w)
        firing: dict[str, list[Any]] = {}
        for a in self.alert_store.firing():
            firing.setdefault(a.deployment, []).append(a)
        rows = []
        for d in self.deployments.list():
            split, problem = self._split(d.name)
            rollout = self._active(d.name)
            windows = sorted(latest.get(d.name, []), key=lambda w: (w.model, w.version))
            alerts = firing.get(d.name, [])
            rows.append(
                {
                    "name": d.name,
                    "model_ref": d.model_ref,
                    "split": split,
                    "problem": problem,
                    "rollout": rollout,
                    "alerts": alerts,
                    "windows": windows,
                    "health": _health(windows, alerts),
                }
            )
        return {"deployments": rows, "firing": sum(len(v) for v in firing.values()), "now": now}

    def _active(self, name: str) -> Any:
        try:
            return self.rollouts.active(name)
        except NothingToDo:
            return None

    def _split(self, name: str) -> tuple[list[dict[str, Any]], str | None]:
        """Who answers what share: one version, a canary's split, or a primary with its shadow."""
        try:
            plan = self.deployments.route(name)
        except NotFound as exc:
            return [], str(exc)
        if plan.candidate is None:
            return [{"ref": plan.primary.ref, "share": 1.0, "arm": "serving"}], None
        if plan.shadow_share:
            return [
                {"ref": plan.primary.ref, "share": 1.0, "arm": "primary"},
                {"ref": plan.candidate.ref, "share": plan.shadow_share, "arm": "shadow (mirrored)"},
            ], None
        return [
            {"ref": plan.primary.ref, "share": 1 - plan.candidate_share, "arm": "baseline"},
            {"ref": plan.candidate.ref, "share": plan.candidate_share, "arm": "candidate"},
        ], None

    # -- one deployment ------------------------------------------------------------------------
    def deployment(
        self, name: str, span: TimeRange, width: str | None = None, device: str | None = None
    ) -> dict[str, Any]:
        """Time series of the deployment's windows in ``span``, with events marked on the time axis; with
        ``device``, of that edge device's rows only (its windows by time)."""
        record = self._deployment(name)
        if device is not None:
            if width is not None and not parse_window(width, self._count_window()).by_time:
                raise BadTimeRange(f"a device's rows have windows by time only: {', '.join(TIME_WIDTHS)}")
            width = width or span.width()
        segment = "" if device is None else f"{DEVICE_SEGMENT}={device}"
        width, windows = self._windows(name, span, width, segment)
        alerts = self.alert_store.list(name, limit=200)
        events = chart_events(self.rollouts.list_events(name, 500), alerts, span.since, span.until)
        classes = class_metrics(windows)
        # traffic by source, once some is not online (batch jobs, edge devices): one chart more says nothing otherwise
        sources = self._sources(name, span, width, events) if device is None else None
        charts = [sources] if sources is not None and len(sources["series"]) > 2 else []
        charts += [
            series_chart("throughput", "Throughput", windows, [("throughput", "rows/s")], unit="rows/s", events=events),
            series_chart(
                "latency",
                "Latency percentiles",
                windows,
                [("latency_p50", "p50"), ("latency_p95", "p95"), ("latency_p99", "p99")],
                unit="s",
                events=events,
            ),
            series_chart("errors", "Error rate", windows, [("error_rate", "errors")], unit=SHARE, events=events),
            series_chart(
                "outputs",
                "Output distribution",
                windows,
                classes + [("mean_confidence", "mean confidence")]
                if classes
                else [("prediction_drift", "prediction drift")],
                unit=SHARE if classes else ZERO_TO_ONE,  # a regression's prediction drift is a score
                events=events,
            ),
            series_chart(
                "performance",
                "Performance: from labels and estimated before them",
                windows,
                [
                    ("accuracy", "accuracy"),
                    ("estimated_accuracy", "estimated accuracy"),
                    ("f1", "F1"),
                    ("mae", "MAE"),
                    ("rmse", "RMSE"),
                ],
                events=events,
            ),
            series_chart(
                "drift",
                "Drift: share of inputs drifted, prediction drift",
                windows,
                [("drift_share", "drifted inputs"), ("prediction_drift", "prediction drift")],
                unit=ZERO_TO_ONE,  # a share and a score (a p-value or a distance) on one axis
                events=events,
            ),
        ]
        return {
            "deployment": record,
            "span": span,
            "width": width,
            "widths": self._widths(),
            "split": self._split(name)[0],
            "charts": charts,
            "heatmap": drift_heatmap(windows),
            "events": list(reversed(events)),
            "firing": [a for a in alerts if a.state == "firing"],
            "windows": len(windows),
            "device": device,
            "devices": self._devices_of(name),
        }

    def _sources(self, name: str, span: TimeRange, width: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Rows per window by source (online, batch, edge), on the range's time windows: sources are
        segments of windows by time (a window by count holds rows in the order they came, of every source)."""
        chosen = width if width in TIME_WIDTHS else span.width()

        def series(segment: str) -> list[MetricWindow]:
            return self.monitoring.windows.series(
                name, chosen, since=span.since, until=span.until, segment=segment, limit=MAX_WINDOWS
            )

        by_source = {source: series(f"{SOURCE_SEGMENT}={source}") for source in ("batch", "edge")}
        return source_chart("sources", series(""), by_source, events=events)

    def _devices_of(self, name: str) -> list[str]:
        return [d.device for d in self.edge().registered(name)] if self.edge is not None else []

    # -- edge devices ----------------------------------------------------------------------------
    def devices(self, deployment: str | None = None) -> dict[str, Any]:
        """Every registered edge device: its deployment, last sync, the bundle it ran, rows and labels received."""
        if self.edge is None:
            raise PageUnavailable("this dashboard was built without the edge part")
        return {"devices": self.edge().registered(deployment), "deployment": deployment}

    def _windows(
        self, name: str, span: TimeRange, width: str | None, segment: str = ""
    ) -> tuple[str, list[MetricWindow]]:
        """The chosen width's windows of ``segment`` (whole traffic by default); by default the range's time
        width, or the count width when that has more windows (a short burst of traffic fills count windows,
        not 5-minute ones)."""
        asked = None if width is None else parse_window(width, self._count_window())  # UnknownWindow: a 400
        chosen = width or span.width()
        windows = self.monitoring.windows.series(
            name, chosen, since=span.since, until=span.until, segment=segment, limit=MAX_WINDOWS
        )
        if asked is not None and not windows:  # a count no one summarises by is a 400 naming the windows
            unkept = unkept_window(asked, self._count_window())
            if unkept is not None:
                raise unkept
        if width is None and len({w.start for w in windows}) < 3:
            counted = self.monitoring.windows.series(
                name, self._widths()[-1], since=span.since, until=span.until, limit=MAX_WINDOWS
            )
            if len({w.start for w in counted}) > len({w.start for w in windows}):
                return self._widths()[-1], counted
        return chosen, windows

    def _widths(self) -> list[str]:
        return window_names(self._count_window())

    def _count_window(self) -> int:
        return self.monitoring.summarizer.config.count_window

    def _deployment(self, name: str) -> Any:
        try:
            return self.deployments.get(name)
        except NotFound as exc:
            raise PageNotFound(f"there is no deployment {name!r}") from exc

    # -- drift drill-down ------------------------------------------------------------------------
    def drift(
        self, name: str, feature: str, span: TimeRange, width: str | None = None, version: int | None = None
    ) -> dict[str, Any]:
        """One input's reference and current histograms (the windows' mergeable summaries added up),
        the test the engine chose for it, its statistic and threshold, and its score per window."""
        self._deployment(name)
        width, windows = self._windows(name, span, width)
        if version is None and windows:
            rows: dict[tuple[str, int], int] = {}
            for w in windows:
                rows[(w.model, w.version)] = rows.get((w.model, w.version), 0) + w.rows
            model, version = max(rows, key=lambda k: rows[k])
        elif windows:
            model = next((w.model for w in windows if w.version == version), windows[-1].model)
        else:
            primary = self.deployments.route(name).primary
            model, version = primary.model, version or primary.version
        ref = f"{model}:{version}"
        try:
            signature = self.registry.get_signature(ref)
        except NotFound as exc:
            raise PageNotFound(f"{name} has no version {ref}") from exc
        if feature not in signature.input_names:
            raise PageNotFound(
                f"{ref} has no input feature {feature!r}", [f"its inputs: {', '.join(signature.input_names)}"]
            )
        mine = [w for w in windows if (w.model, w.version) == (model, version)]
        # the histogram adds up the range's time windows whatever the chart's width: the same rows as its
        # count windows, in a few hundred summaries at most (a busy hour has a thousand count windows)
        merged_width = span.width()
        full = self.monitoring.windows.series(
            name,
            merged_width,
            since=span.since,
            until=span.until,
            version=version,
            model=model,
            with_summary=True,
            limit=500,
        )
        result, problem = None, None
        profile = self.registry.get_profile(ref)
        inputs = _merged_inputs(full, feature)
        if profile is None or feature not in profile.get("columns", {}):
            problem = f"{ref} was registered without a reference for {feature!r}: nothing to compare with"
        elif inputs is None or feature not in inputs["columns"] or not inputs["columns"][feature]["count"]:
            problem = f"no logged values of {feature!r} for {ref} in this range"
        else:
            try:
                result = compare_summary_to_profile(profile, inputs, columns=[feature]).columns[feature]
            except DriftError as exc:
                problem = str(exc)
        charts = []
        if result is not None:
            histogram = result.histogram
            if "edges" in histogram and profile is not None and inputs is not None:  # a number of many values
                histogram = quantile_bins(profile["columns"][feature], inputs["columns"][feature]) or histogram
            charts.append(histogram_chart("histogram", histogram, result.reference_rows, result.current_rows))
        score = series_chart(
            "score",
            "Score per window",
            mine,
            [(f"drift.{feature}", "score")],
            threshold=result.threshold if result is not None else None,
        )
        charts.append(score)
        return {
            "deployment": name,
            "feature": feature,
            "ref": ref,
            "version": version,
            "span": span,
            "width": width,
            "widths": self._widths(),
            "result": result,
            "problem": problem,
            "charts": charts,
            "windows": len(full),
            "merged_width": merged_width,
            "versions": sorted({version_of(w) for w in windows}),
            "column": signature.column(feature),
        }

    # -- rollout -------------------------------------------------------------------------------
    def rollout(self, name: str, now: datetime | None = None) -> dict[str, Any]:
        """The rollout in progress (else the last one): its steps, each step's gates with their numbers
        (as the controller stored them), both versions' newest windows, its events, and what can be done."""
        now = now or datetime.now(UTC)
        self._deployment(name)
        try:
            record = self.rollouts.current(name)
        except RolloutNotFound:
            return {"deployment": name, "rollout": None, "history": [], "actions": [], "verbs": ACTION_VERBS}
        events = [e for e in self.rollouts.list_events(name, 500) if e.rollout_id == record.id]
        analyses: dict[int, dict[str, Any]] = {}
        for e in reversed(events):  # oldest first: a step's last word wins
            step = e.data.get("step")
            if isinstance(step, int) and isinstance(e.data.get("analysis"), dict):
                analyses[step] = {"kind": e.kind, "at": e.at, **e.data["analysis"]}
        steps = []
        plan_steps = record.plan.get("steps") or []
        for i, weight in enumerate(plan_steps if record.strategy == "canary" else []):
            if record.state == "promoted":
                state = "promoted" if i == len(plan_steps) - 1 else "passed"
            elif i < record.step:
                state = "passed"
            elif i == record.step and record.active:
                state = record.state  # running | paused
            elif i == record.step and record.state == "rolled_back":
                state = "rolled back"
            else:
                state = "pending"
            steps.append({"index": i, "weight": weight, "state": state, "analysis": analyses.get(i)})
        recent = self.monitoring.windows.series(name, "5m", since=now - RECENT, limit=200)
        newest: dict[str, MetricWindow] = {}
        for w in recent:
            newest[version_of(w)] = w
        arms = [
            {"arm": arm, "ref": ref, "window": newest.get(ref)}
            for arm, ref in (("baseline", record.baseline), ("candidate", record.candidate))
        ]
        actions = []
        if record.active:
            actions = ["resume" if record.state == "paused" else "pause", "promote", "rollback"]
        shown = [{k: v for k, v in a.items() if k not in ("kind", "at")} for a in analyses.values()]
        last = record.analysis if record.analysis not in shown else None  # else it is already in its step's row
        return {
            "deployment": name,
            "rollout": record,
            "plan": describe_plan(record.plan),
            "steps": steps,
            "last_analysis": last,
            "arms": arms,
            "events": events,
            "actions": actions,
            "verbs": ACTION_VERBS,
            "history": self.rollouts.history(name, 10),
        }

    def act(self, name: str, action: str, actor: str, reason: str | None = None) -> str:
        """Promote, roll back, pause or resume the rollout in progress; says what happened."""
        self._deployment(name)
        acts = {
            "promote": self.rollouts.promote,
            "rollback": self.rollouts.rollback,
            "pause": self.rollouts.pause,
            "resume": self.rollouts.resume,
        }
        if action not in acts:
            raise PageNotFound(f"there is no rollout action {action!r}; one of {', '.join(ACTIONS)}")
        record = acts[action](name, actor, reason or None)
        return f"rollout {record.id} of {name}: {record.state.replace('_', ' ')}"

    def confirm(self, name: str, action: str) -> dict[str, Any]:
        """What the confirmation page says before an action runs."""
        if action not in ACTIONS:
            raise PageNotFound(f"there is no rollout action {action!r}; one of {', '.join(ACTIONS)}")
        self._deployment(name)
        try:
            record = self.rollouts.active(name)
        except NothingToDo as exc:
            raise PageNotFound(str(exc)) from exc
        effect = {
            "promote": f"{record.candidate} becomes the version {name} serves, for all traffic",
            "rollback": f"all traffic goes back to {record.baseline} at once; the rollout ends",
            "pause": f"the split stays at {record.weight:g}% until someone resumes, promotes or rolls back",
            "resume": "the rollout goes on; its current step starts a fresh window",
        }[action]
        return {"deployment": name, "action": action, "verb": ACTION_VERBS[action], "rollout": record, "effect": effect}

    # -- models --------------------------------------------------------------------------------
    def models(self) -> dict[str, Any]:
        return {
            "models": [
                {"record": m, "versions": self.registry.list_versions(m.name)} for m in self.registry.list_models()
            ]
        }

    def model(self, name: str) -> dict[str, Any]:
        """Every version with its signature and offline metrics, and the alias history."""
        try:
            versions = self.registry.list_versions(name)
        except NotFound as exc:
            raise PageNotFound(f"there is no model {name!r}") from exc
        record = next((m for m in self.registry.list_models() if m.name == name), None)
        metric_names = sorted({k for v in versions for k in v.metrics})
        return {
            "name": name,
            "record": record,
            "versions": list(reversed(versions)),
            "metric_names": metric_names,
            "aliases": list(reversed(self.registry.alias_history(name))),
            "lineage": lineage_rows(versions),
        }

    # -- retraining ----------------------------------------------------------------------------
    def _retraining(self) -> Retraining:
        if self.retraining is None:
            raise PageNotFound("this dashboard was built without retraining")
        try:
            return self.retraining()
        except InvalidPolicy as exc:
            raise PageUnavailable(
                f"the retraining policies in matchday.yaml do not read: {exc.message}", exc.details
            ) from exc

    def retrain_runs(self, deployment: str | None = None, limit: int = 100) -> dict[str, Any]:
        """The runs, newest first (of one deployment if given), and the policies in force, each saying
        whether its deployment has a run going on."""
        retraining = self._retraining()
        known = [d.name for d in self.deployments.list()]
        if deployment and deployment not in known and deployment not in retraining.policies:
            raise PageNotFound(f"there is no deployment {deployment!r}")
        runs = retraining.runs(deployment or None, limit=limit)
        policies = []
        for name, policy in sorted(retraining.policies.items()):
            latest = retraining.runs(name, limit=1)
            policies.append(policy_row(policy, latest[0] if latest else None))
        return {
            "runs": [run_row(r) for r in runs],
            "limit": limit,
            "policies": policies,
            "deployment": deployment,
            "deployments": sorted({*known, *retraining.policies}),
        }

    def retrain_run(self, run_id: int) -> dict[str, Any]:
        """One run: its steps, the evaluation report, the data it was given, its rollout and candidate."""
        run = self._retraining().get(run_id)
        rollout = None
        if run.rollout_id is not None:
            rollout = next((r for r in self.rollouts.history(run.deployment, 50) if r.id == run.rollout_id), None)
        candidate = None
        if run.candidate:
            try:
                candidate = self.registry.get_version(run.candidate)
            except NotFound:
                candidate = None  # registered and then deleted: the run still names it
        return {
            "run": run,
            "row": run_row(run),
            "steps": step_rows(run),
            "evaluation": run.evaluation,
            "snapshot": run.snapshot,
            "window": snapshot_window(run.snapshot),
            "rollout": rollout,
            "rollout_id": run.rollout_id,
            "candidate_version": candidate,
            "parent_model": model_link(run.parent),
            "candidate_model": model_link(run.candidate),
            "actions": _run_actions(run),
            "refresh": run.finished_at is None,  # a finished run changes no more
        }

    def retrain_act(self, run_id: int, action: str, actor: str, reason: str | None = None) -> str:
        """Approve a run that waits for it, or cancel one still going on; says what happened."""
        retraining = self._retraining()
        if action == "approve":
            run = retraining.approve(run_id, actor, reason or None)
        elif action == "cancel":
            run = retraining.cancel(run_id, actor, reason or None)
        else:
            raise PageNotFound(f"there is no retraining action {action!r}; one of {', '.join(RUN_ACTIONS)}")
        return f"run {run.id} of {run.deployment}: {run.state.replace('_', ' ')}"

    # -- alerts --------------------------------------------------------------------------------
    def alerts(self, state: str | None = None, deployment: str | None = None) -> dict[str, Any]:
        """Open and resolved alerts, each with the monitor that raised it (as configured now)."""
        if state not in (None, "firing", "resolved"):
            raise BadTimeRange(f"unknown alert state {state!r}; firing or resolved")
        if deployment:
            self._deployment(deployment)
        alerts = self.alert_store.list(deployment or None, state=state, limit=500)
        monitors: dict[tuple[str, str], MonitorSpec] = {}
        for d in {a.deployment for a in alerts}:
            for m in self.monitoring.monitors_of(d):
                monitors[(d, m.name)] = m
        rows: list[AlertEntry] = [{"alert": a, "monitor": monitors.get((a.deployment, a.monitor))} for a in alerts]
        return {
            "firing": [r for r in rows if r["alert"].state == "firing"],
            "resolved": [r for r in rows if r["alert"].state != "firing"],
            "state": state,
            "deployment": deployment,
            "deployments": [d.name for d in self.deployments.list()],
        }

    # -- the review queue ------------------------------------------------------------------------
    def _people(self) -> tuple[ReviewQueue, Automation]:
        if self.review is None or self.automation is None:
            raise PageNotFound("this dashboard was built without the review queue")
        return self.review, self.automation

    def review_queues(self) -> dict[str, Any]:
        """Each deployment with a review policy: its level, how many items wait (open and escalated),
        and its reviewers' numbers so far."""
        review, automation = self._people()
        rows: list[dict[str, Any]] = []
        for d in self.deployments.list():
            try:
                policy = automation.policy(d.name)
            except ReviewError as exc:  # a stored policy that no longer reads: say so, do not hide the queue
                rows.append({"name": d.name, "level": None, "problem": exc.message, "stats": self._day(review, d.name)})
                continue
            if policy is None:
                continue
            rows.append(
                {
                    "name": d.name,
                    "level": policy.level.value,
                    "blind": policy.effective_blind,
                    "problem": None,
                    "stats": self._day(review, d.name),
                }
            )
        return {"queues": rows, "candidates": self._awaiting_approval()}

    def _awaiting_approval(self) -> list[dict[str, Any]]:
        """Retrained candidates an operator must approve before their rollout: people's other queue."""
        if self.retraining is None:
            return []
        try:
            runs = self.retraining().awaiting_approval()
        except InvalidPolicy:
            return []  # the retraining pages say why
        return [run_row(r) for r in runs]

    @staticmethod
    def _day(review: ReviewQueue, name: str) -> dict[str, Any]:
        """A queue's numbers over the last day's items (its whole history would be read otherwise), with
        the depth of every item still waiting, however old."""
        return {**review.stats(name, datetime.now(UTC) - timedelta(days=1)), "queue_depth": review.depth(name)}

    def review_item(self, name: str, reviewer: str, reveal: bool = False, decided: str | None = None) -> dict[str, Any]:
        """The next item of ``name``'s queue for ``reviewer``, claimed under the policy's lease (the item
        they hold already, if any), shown as a reviewer sees it; and what ``decided`` became, if given."""
        review, automation = self._people()
        self._deployment(name)
        try:
            policy = automation.policy(name)
        except ReviewError:
            policy = None  # a policy that no longer reads: the items queued under it can still be decided
        item = review.next(name, reviewer, policy.lease_seconds) if policy is not None else review.next(name, reviewer)
        out: dict[str, Any] = {
            "deployment": name,
            "policy": policy,
            "level": policy.level.value if policy is not None else None,
            "just": self._just_decided(review, name, reviewer, decided),
            "depth": review.depth(name),
            "item": None,
        }
        if item is None:
            return out
        shown = reveal or not item.blind
        view = item_json(item, reveal=reveal)
        field = self._label_field(item)
        inputs = [(k, view["inputs"][k]) for k in field.pop("order") if k in view["inputs"]]
        inputs += [(k, v) for k, v in view["inputs"].items() if k not in dict(inputs)]
        out.update(
            item=view,
            record=item,
            shown=shown,
            revealed=reveal and item.blind,
            inputs=inputs,
            probabilities=_class_shares(field.get("classes"), view["probabilities"]),
            field=field,
        )
        return out

    def _label_field(self, item: ReviewItemRecord) -> dict[str, Any]:
        """How the override label is asked for: a choice of the version's classes, or a number."""
        try:
            signature = self.registry.get_signature(f"{item.model}:{item.version}")
        except NotFound:
            return {"kind": "text", "classes": None, "order": []}
        order = list(signature.input_names)
        if signature.output.task == "regression":
            return {"kind": "number", "classes": None, "order": order}
        classes = signature.output.classes
        if classes:
            return {"kind": "select", "classes": [label_text(c) for c in classes], "order": order}
        return {"kind": "text", "classes": None, "order": order}

    def _just_decided(
        self, review: ReviewQueue, name: str, reviewer: str, item_id: str | None
    ) -> dict[str, Any] | None:
        """What became of the item ``reviewer`` just decided (the page after a decision says it)."""
        if not item_id:
            return None
        try:
            item = review.get(item_id)
        except NotFound:
            return None
        if item.deployment != name:
            return None
        mine = next((d for d in reversed(item.decisions) if d.reviewer == reviewer), None)
        if mine is None:
            return None
        return {
            "id": item.id,
            "action": mine.action,
            "label": item.suggestion if mine.action == "approve" and not item.blind else mine.label,
            "status": item.status,
            "outcome": item.outcome,
        }

    def review_decide(
        self, name: str, item_id: str, reviewer: str, action: str, label: str = "", revealed: bool = False
    ) -> ReviewItemRecord:
        """``reviewer``'s decision on an item of ``name``'s queue, from the page's form: the label typed
        or chosen is read as the version's class (or a number for a regression)."""
        review, _ = self._people()
        item = review.get(item_id)
        if item.deployment != name:
            raise PageNotFound(f"review item {item_id!r} is not in the queue of {name!r}")
        if action not in REVIEW_ACTIONS:
            raise ReviewError(f"{action!r} is not a decision: approve, override or skip")
        value: Any = None
        if action == "override":
            value = self._label_value(item, label.strip())
        return review.decide(item_id, reviewer, action, value, saw_suggestion=(not item.blind) or revealed)

    def _label_value(self, item: ReviewItemRecord, text: str) -> Any:
        if not text:
            raise ReviewError("override needs the right label: choose or type it")
        try:
            signature = self.registry.get_signature(f"{item.model}:{item.version}")
        except NotFound:
            return text
        if signature.output.task == "regression":
            try:
                number = float(text)
            except ValueError:
                raise ReviewError(f"{text!r} is not a label for {item.model}:{item.version}: a number") from None
            if not math.isfinite(number):
                raise ReviewError(f"{text!r} is not a label for {item.model}:{item.version}: a finite number")
            return number
        for c in signature.output.classes or []:
            if label_text(c) == text:
                return c  # the class as the model gives it (0, not "0")
        return text  # not a class: the queue refuses it, naming the classes


def _run_actions(run: RetrainRunRecord) -> list[str]:
    """What an operator may do to a run now: approve one that waits for it; cancel any still going on."""
    if run.finished_at is not None:
        return []
    return ["approve", "cancel"] if run.state == "awaiting_approval" else ["cancel"]


def _health(windows: list[MetricWindow], alerts: list[Any]) -> str:
    """critical / warning from firing alerts, else ok while windows are coming in, else idle."""
    if any(a.severity == "critical" for a in alerts):
        return "critical"
    if alerts:
        return "warning"
    return "ok" if windows else "idle"


def _class_shares(classes: list[str] | None, probabilities: Any) -> list[tuple[str, float]] | None:
    """The model's probabilities by class, when they line up with the version's classes."""
    if isinstance(probabilities, dict):
        return [(str(k), float(v)) for k, v in probabilities.items() if isinstance(v, int | float)]
    if classes and isinstance(probabilities, list) and len(probabilities) == len(classes):
        if all(isinstance(p, int | float) and not isinstance(p, bool) for p in probabilities):
            return list(zip(classes, (float(p) for p in probabilities), strict=True))
    return None


def _merged_inputs(windows: list[MetricWindow], feature: str) -> TableSummary | None:
    """One input's summary over all ``windows`` (sketches and counts added), merged pairwise as a
    balanced tree; the other inputs are left alone."""
    parts: list[TableSummary] = []
    for w in windows:
        inputs = (w.summary or {}).get("inputs")
        if inputs and feature in inputs.get("columns", {}):
            parts.append({"rows": inputs["rows"], "columns": {feature: inputs["columns"][feature]}})
    if not parts:
        return None
    while len(parts) > 1:
        parts = [
            merge_summaries(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)
        ]
    return parts[0]
