"""The loop closing: a lockdown changes what fraud looks like, the accuracy alert fires on late labels,
and with no one at the keyboard the worker retrains the model on the fresh labelled rows, judges it
against the champion on the newest of them, mirrors it, canaries it, and promotes it; accuracy comes back.

The policy is written to ``checkout.yaml`` in the demo's home and the server and worker of this step run
with it, as ``MATCHDAY_CONFIG=<that file> matchday serve`` would. The trainer is :func:`train` below.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml
from rich.console import Console

from matchday.config import MonitoringSettings
from matchday.demo import caller
from matchday.demo.fraud import fraud_pipeline, transactions
from matchday.demo.serving import running_server
from matchday.registry import PinnedRef, ReferenceProfile
from matchday.retrain import RetrainAlreadyActive, TrainingData
from matchday.workspace import Workspace

DEPLOYMENT = "checkout"
WINDOW = 100  # rows per window by count: the accuracy monitor judges every 100 labelled rows
LAG = 100  # a label comes back this many transactions after its prediction (a chargeback is late)
AFTER = 500  # transactions sent after the promotion, for the windows that show accuracy back
POLICY: dict[str, Any] = {
    "deployment": DEPLOYMENT,
    "trainer": "matchday.demo.retraining:train",
    "triggers": {"monitors": ["accuracy-drop"], "min_new_labels": 400},
    "data": {"reference": False, "production": {"window": "1h"}},
    "holdout": {"newest": 0.25, "min_rows": 40},
    "accept": {"metric": "accuracy", "min_gain": 0.0, "no_worse_segments": ["country"]},
    "rollout": {
        "shadow_first": "2s",
        "steps": [50, 100],
        "interval": "1s",
        "min_requests": 40,
        "deadline": "120s",
        "gates": {
            "min_labels": 40,
            "max_latency_p99_ratio": 50,  # a loaded laptop's latency is not what this canary is about
            "latency_slack_seconds": 0.5,
        },
    },
    "guards": {"cooldown": "1h", "max_per_day": 3, "stop_after_rejections": 2, "approval": "none"},
}


def train(data: TrainingData) -> Any:
    """The demo's trainer (``trainer: matchday.demo.retraining:train``): the champion's encoding with a shallow
    tree (a few hundred fresh rows would overfit gradient boosting), fitted on the labelled production rows
    (the policy leaves the reference out: its labels are the world before the lockdown)."""
    from sklearn.tree import DecisionTreeClassifier

    tree = DecisionTreeClassifier(max_depth=4, min_samples_leaf=10, random_state=0)
    return fraud_pipeline(tree).fit(data.features(), data.labels().astype(int))


@dataclass(frozen=True)
class Outcome:
    """What the step saw: the run's end, and accuracy by window before and after the promotion."""

    run: int | None
    state: str
    candidate: str | None
    reference: float | None
    before: list[float]
    after: list[float]

    @property
    def recovered(self) -> bool:
        """Accuracy under the retrained version back within 3 points of the reference, above the champion's."""
        if not self.before or not self.after or self.reference is None:
            return False
        after, before = _mean(self.after), _mean(self.before)
        return after > before and abs(after - self.reference) <= 0.03


class Checkout:
    """A checkout service in a thread: 20 transactions a request; each label comes back ``LAG`` rows later."""

    def __init__(self, url: str, seed: int = 41) -> None:
        traffic = transactions(10_000, seed=seed, lockdown=1.0)
        self.rows = traffic.drop_columns(["is_fraud"]).to_pylist()
        self.truth = traffic["is_fraud"].to_pylist()
        self.http = caller.http(url)
        self.sent = 0
        self.pending: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = self.sent % (len(self.rows) - 20)
            answer = self.http.post(
                f"/v1/deployments/{DEPLOYMENT}/predict", json={"instances": self.rows[start : start + 20]}
            )
            answer.raise_for_status()
            self.pending += [
                (p["request_id"], self.truth[start + k]) for k, p in enumerate(answer.json()["predictions"])
            ]
            self.sent += 20
            if len(self.pending) > LAG:
                self._label(len(self.pending) - LAG)
            time.sleep(0.05)

    def _label(self, n: int) -> None:
        done, self.pending = self.pending[:n], self.pending[n:]
        labels = [{"request_id": r, "label": y} for r, y in done]
        self.http.post(f"/v1/deployments/{DEPLOYMENT}/feedback", json={"labels": labels}).raise_for_status()

    def start(self) -> Checkout:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sending; the labels still owed arrive now."""
        self._stop.set()
        self._thread.join(30)
        if self.pending:
            self._label(len(self.pending))
        self.http.close()


def run(console: Console, ws: Workspace, timeout: float = 180.0) -> Outcome:
    ws.deployments.deploy(DEPLOYMENT, "demo-fraud@champion")
    champion = ws.deployments.route(DEPLOYMENT).primary
    reference = _reference_accuracy(ws.registry.get_profile(champion.ref))
    config = ws.settings.home / f"{DEPLOYMENT}.yaml"
    text = yaml.safe_dump({"monitoring": {"count_window": WINDOW}, "retrain": [POLICY]}, sort_keys=False)
    config.write_text(text)
    shown = f"reference accuracy {reference:.3f}" if reference is not None else "no labelled reference"
    console.print(
        f"$ matchday deploy {DEPLOYMENT} demo-fraud@champion   → serves {champion.ref} ({shown})\n"
        f"wrote {config} (what `MATCHDAY_CONFIG={config} matchday serve` runs with):"
    )
    console.print(text.rstrip(), highlight=False, markup=False)
    written = yaml.safe_load(config.read_text())
    settings: dict[str, Any] = {
        "monitoring": MonitoringSettings(**written["monitoring"]),
        "retrain": written["retrain"],
        "monitor_interval": 0.5,
        "controller_interval": 0.5,
    }
    console.print(
        "[bold]lockdown[/]: shopping moves online and baskets double; nobody travels, so a card used abroad is "
        "the stolen one, and big online baskets are genuine. The champion starts declining genuine customers."
    )
    since = datetime.now(UTC)
    stale = ws.alerts.firing(DEPLOYMENT)
    for alert in stale:  # left firing by an earlier demo in this home: this one starts from a quiet deployment
        ws.alerts.resolve(alert.id, alert.value)
    if stale:
        console.print(f"(closed {len(stale)} alerts an earlier demo left firing on {DEPLOYMENT})")
    started = time.perf_counter()
    governed = Workspace(ws.settings.model_copy(update=settings))  # the policy in force, as the worker reads it
    try:
        with running_server(ws, **settings) as url:
            checkout = Checkout(url).start()
            try:
                run_id = _watch(console, governed, checkout, since, started, timeout)
            finally:
                checkout.stop()
            _caught_up(ws, checkout.sent)
    finally:
        governed.close()
    console.print(f"{checkout.sent:,} transactions in {time.perf_counter() - started:.0f}s")
    if run_id is None:
        console.print("[yellow]no retraining run started[/]")
        return Outcome(None, "none", None, reference, [], [])
    return _show(console, ws, run_id, champion.model, champion.version, reference)


def _watch(
    console: Console, ws: Workspace, checkout: Checkout, since: datetime, started: float, timeout: float
) -> int | None:
    """Print each change (an alert, the run's state, the canary's share) until the run has ended and
    ``AFTER`` more transactions went to whichever version won; the run's id.

    A demo run again in the same home within the hour finds its trigger held by the guards (the cooldown
    after the earlier demo's run, or the daily cap): it says so and starts the run by hand."""
    said: set[str] = set()
    run_id: int | None = None
    ended_at: int | None = None
    deadline = time.monotonic() + timeout

    def say(key: str, text: str) -> None:
        if key not in said:
            said.add(key)
            console.print(f"  {time.perf_counter() - started:5.1f}s {checkout.sent:>6,} sent: {text}")

    while time.monotonic() < deadline:
        for alert in ws.alerts.firing(DEPLOYMENT) if run_id is None else []:  # the alerts that ask for a run
            if alert.monitor in POLICY["triggers"]["monitors"] and alert.opened_at >= since:
                say(
                    f"alert {alert.id}",
                    f"[red]alert {alert.id} {alert.monitor}[/] on {alert.model}:{alert.version} "
                    f"(accuracy {alert.value:.3f} on a window, {alert.data.get('compared', 0):+.3f} against the reference)",
                )
        runs = [r for r in ws.retraining.runs(DEPLOYMENT, limit=1) if r.created_at >= since]
        if not runs:
            held = [
                e
                for e in ws.events.list(DEPLOYMENT, since=since, kinds=("retrain_suppressed",), limit=5)
                if "min_new_labels" not in e.reason  # that one lets the run start once the labels are in
            ]
            if held and "held" not in said and any(key.startswith("alert") for key in said):
                say("held", f"the guards hold the trigger: {held[0].reason}")
                try:
                    ws.retraining.run(DEPLOYMENT, "demo", "the demo ran again before the guards allow a triggered run")
                except RetrainAlreadyActive:  # the worker started one meanwhile
                    pass
                say("by hand", f"$ matchday retrain run {DEPLOYMENT}   (a run by hand is not held by the guards)")
        else:
            current = runs[0]
            run_id = current.id
            step = current.steps[-1] if current.steps else {}
            say(f"run {current.state}", f"run {current.id} [bold]{current.state}[/]: {step.get('message', '')}")
            if current.state == "rolling_out" and current.rollout_id is not None:
                rollout = ws.rollouts.store.get(current.rollout_id)
                phase = (
                    "mirrored, answering nobody (shadow)"
                    if rollout.phase == "shadow"
                    else f"{rollout.weight:g}% of traffic"
                )
                say(f"rollout {rollout.phase} {rollout.weight}", f"rollout {rollout.id}: the candidate gets {phase}")
            if current.finished_at is not None and ended_at is None:
                ended_at = checkout.sent
        if ended_at is not None and checkout.sent >= ended_at + AFTER:
            return run_id
        time.sleep(0.2)
    console.print(f"  [yellow]the run did not end within {timeout:.0f}s[/]")
    return run_id


def _show(console: Console, ws: Workspace, run_id: int, model: str, version: int, reference: float | None) -> Outcome:
    run = ws.retraining.get(run_id)
    console.print(f"$ matchday retrain show {run_id}   ({run.state}: {run.reason})")
    for step in run.steps:
        console.print(f"  {step['at'][11:19]}  {step['state']:<12} {step['message']}", highlight=False)
    evaluation = run.evaluation
    if evaluation:
        interval = evaluation["interval"]
        console.print(
            f"judged before any traffic, on the {evaluation['rows']} newest labelled rows (never trained on): "
            f"champion {evaluation['champion']:.3f}, candidate {evaluation['candidate']:.3f}, gain "
            f"{evaluation['gain']:+.3f} ({evaluation['confidence']:.0%} paired-bootstrap interval "
            f"{interval['low']:+.3f} to {interval['high']:+.3f}; min_gain {evaluation['min_gain']:+g}): "
            + (
                "[green]accepted[/]"
                if evaluation["accepted"]
                else f"[red]rejected[/] ({'; '.join(evaluation['reasons'])})"
            )
        )
        for seg in evaluation["segments"]:
            numbers = f"{seg['champion']:.3f} -> {seg['candidate']:.3f}" if seg["candidate"] is not None else "-"
            console.print(
                f"    segment {seg['segment']}={seg['value']}: {seg['rows']} rows, {numbers}, {seg['verdict']}"
            )
    if run.rollout_id is not None:
        console.print(f"rollout {run.rollout_id} of {run.candidate} on {DEPLOYMENT}:")
        events = [e for e in ws.rollouts.list_events(DEPLOYMENT, limit=200) if e.rollout_id == run.rollout_id]
        for event in sorted(events, key=lambda e: e.id):
            console.print(f"  {event.at:%H:%M:%S}  {event.kind:<16} {event.reason}", highlight=False)
    if run.candidate is not None:
        lineage = ws.registry.get_version(run.candidate).lineage or {}
        data = lineage.get("data", {})
        console.print(
            f"lineage of {run.candidate}: parent {lineage.get('parent')}, trigger {_trigger(lineage.get('trigger'))}, "
            f"trainer {lineage.get('trainer')} ({lineage.get('engine')} engine, {lineage.get('training_seconds', 0):.1f}s), "
            f"data {data.get('rows')} labels {data.get('labels_by_source')} sha256 {str(data.get('sha256'))[:12]}…, "
            f"rollout {lineage.get('rollout')}",
            highlight=False,
        )
        console.print(f"@champion now points to {model}:{ws.registry.resolve(f'{model}@champion').version}")
    before = _accuracies(ws, model, version)
    after = _accuracies(ws, model, PinnedRef.parse(run.candidate).version) if run.candidate else []
    shown = f"reference {reference:.3f}" if reference is not None else "no reference accuracy"
    console.print(f"accuracy by window of {WINDOW} labelled transactions ({shown}):")
    console.print(f"  {model}:{version} (champion, lockdown)   {_row(before)}")
    if run.candidate is not None:
        console.print(f"  {run.candidate} (retrained)          {_row(after)}")
    outcome = Outcome(run_id, run.state, run.candidate, reference, before, after)
    if outcome.recovered:
        console.print(
            f"[green]accuracy recovered[/]: {_mean(before):.3f} -> {_mean(after):.3f}, "
            f"within {abs(_mean(after) - (reference or 0)):.3f} of the reference"
        )
    return outcome


def _accuracies(ws: Workspace, model: str, version: int) -> list[float]:
    """Accuracy of the version's full windows by count (the last, partly filled one left out)."""
    windows = ws.windows.series(DEPLOYMENT, f"{WINDOW}rows", segment="", model=model, version=version)
    return [float(w.metrics["accuracy"]) for w in windows if w.metrics.get("labelled", 0) >= WINDOW // 2]


def _caught_up(ws: Workspace, sent: int, timeout: float = 20.0) -> None:
    """Wait until the monitoring loop has summarised every transaction and judged its label."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        windows = ws.windows.series(DEPLOYMENT, f"{WINDOW}rows", segment="")
        if sum(w.metrics.get("labelled", 0) for w in windows) >= sent:
            return
        time.sleep(0.2)


def _reference_accuracy(profile: ReferenceProfile | None) -> float | None:
    sample = profile.get("labelled_sample") if profile else None
    labels, predictions = (sample.get("labels"), sample.get("predictions")) if sample else (None, None)
    if not labels or not predictions:
        return None
    return sum(str(a) == str(b) for a, b in zip(labels, predictions)) / len(labels)


def _trigger(trigger: dict[str, Any] | None) -> str:
    if not trigger:
        return "-"
    if trigger.get("kind") == "monitor":
        return f"alert {trigger.get('alert')} of {trigger.get('monitor')} ({trigger.get('metric')} = {trigger.get('value'):.3f})"
    return str(trigger.get("kind"))


def _row(values: list[float], last: int = 10) -> str:
    if not values:
        return "no full window"
    shown = " ".join(f"{v:.2f}" for v in values[-last:])
    more = f"… {len(values) - last} more, then " if len(values) > last else ""
    return f"mean {_mean(values):.3f} over {len(values)} windows ({more}{shown})"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
