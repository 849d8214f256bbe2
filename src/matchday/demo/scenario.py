"""The scenario `make demo` runs: the whole loop a newcomer came for, as steps that each say what they did
and check that it happened (``--headless`` stops at the first that did not, naming it)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from matchday.config import Settings, load_settings
from matchday.demo import (
    access,
    batch,
    caller,
    camera,
    config_file,
    drift,
    edge,
    monitoring,
    retraining,
    review,
    rollout,
)
from matchday.demo import serving as cloud
from matchday.demo.fraud import fraud_pipeline, transactions
from matchday.errors import MatchdayError
from matchday.registry import ModelNotFound
from matchday.workspace import Workspace

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

DEMO_MODELS = ("demo-fraud", "demo-digits")
MARKER = ".made-by-matchday-demo"  # in a home the demo created: the next demo may start it over


class DemoStepFailed(MatchdayError):
    """A step of the demo ran but what it promises did not happen (``--headless`` exits non-zero with it)."""


def train_fraud_model(seed: int = 0) -> tuple[Pipeline, pd.DataFrame, float]:
    """A scikit-learn pipeline (one-hot + gradient boosting) on synthetic transactions."""
    data = transactions(20_000, seed=seed).to_pandas()
    train, test = data.iloc[:15_000], data.iloc[15_000:]
    features = ["amount", "hour", "merchant", "country", "card_present"]
    model = fraud_pipeline(seed=seed).fit(train[features], train["is_fraud"])
    accuracy = float((model.predict(test[features]) == test["is_fraud"]).mean())
    return model, train, accuracy


def train_digits_model() -> tuple[LogisticRegression, pd.DataFrame, float]:
    """Logistic regression on scikit-learn's bundled 8x8 digit images."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    digits = load_digits(as_frame=True)
    frame = digits.frame
    train, test = frame.iloc[:1400], frame.iloc[1400:]
    pixels = digits.feature_names
    model = LogisticRegression(max_iter=2000).fit(train[pixels], train["target"])
    accuracy = float((model.predict(test[pixels]) == test["target"]).mean())
    return model, train, accuracy


@dataclass
class Demo:
    """What the steps share: where they print, the workspace, and what the first step trained."""

    console: Console
    ws: Workspace
    config: Path
    credentials: caller.Credentials
    champion: Any = None
    champion_train: Any = None


@dataclass(frozen=True)
class Step:
    """One titled step: ``run`` does it and returns what it saw; ``check`` says what did not happen, or None."""

    title: str
    run: Callable[[Demo], Any]
    check: Callable[[Any], str | None] = field(default=lambda _: None)


@dataclass(frozen=True)
class Trained:
    fraud_accuracy: float
    digits_accuracy: float
    same_predictions: bool


def _train(demo: Demo) -> Trained:
    console, registry = demo.console, demo.ws.registry
    fraud, fraud_train, fraud_acc = train_fraud_model()
    v1 = registry.register(
        "demo-fraud",
        fraud,
        reference=fraud_train,
        target="is_fraud",
        alias="champion",
        metrics={"accuracy": fraud_acc},
        description="gradient boosting on synthetic transactions",
    )
    digits, digits_train, digits_acc = train_digits_model()
    registry.register(
        "demo-digits",
        digits,
        reference=digits_train,
        target="target",
        alias="champion",
        metrics={"accuracy": digits_acc},
        description="logistic regression on 8x8 digit images",
    )
    console.print(
        f"registered {v1.ref} (test accuracy {fraud_acc:.3f}) and demo-digits:1 (test accuracy {digits_acc:.3f})"
    )
    challenger, challenger_train, challenger_acc = train_fraud_model(seed=1)
    v2 = registry.register(
        "demo-fraud",
        challenger,
        reference=challenger_train,
        target="is_fraud",
        alias="challenger",
        metrics={"accuracy": challenger_acc},
    )
    comparison = f"test accuracy {challenger_acc:.3f} vs champion {fraud_acc:.3f}"
    demo.champion, demo.champion_train = fraud, fraud_train
    if challenger_acc > fraud_acc:
        registry.set_alias("demo-fraud", v2.version, "champion", reason=f"challenger wins: {comparison}")
        demo.champion, demo.champion_train = challenger, challenger_train
        console.print(f"a challenger, {v2.ref}, promoted to @champion ({comparison})")
    else:
        console.print(f"a challenger, {v2.ref}, not promoted ({comparison}): @champion stays on {v1.ref}")
    loaded = registry.load("demo-fraud@champion")
    sample = transactions(2_000, seed=99)
    same = bool(
        np.array_equal(loaded.predict(sample), demo.champion.predict(sample.drop_columns(["is_fraud"]).to_pandas()))
    )
    console.print(f"loaded demo-fraud@champion -> {loaded.ref} ({loaded.flavor}): same predictions as trained: {same}")
    return Trained(fraud_acc, digits_acc, same)


def _trained(t: Trained) -> str | None:
    if min(t.fraud_accuracy, t.digits_accuracy) < 0.8:
        return f"test accuracies {t.fraud_accuracy:.3f} and {t.digits_accuracy:.3f}, expected at least 0.8"
    return None if t.same_predictions else "the model loaded by alias predicted differently from the trained one"


def _serve(demo: Demo) -> tuple[cloud.Outcome, drift.Outcome]:
    served = cloud.run(demo.console, demo.ws)
    demo.console.rule("[dim]the served traffic and a shifted batch against the reference profile", style="dim")
    return served, drift.run(demo.console, demo.ws)


def _served(outcome: tuple[cloud.Outcome, drift.Outcome]) -> str | None:
    served, drifted = outcome
    if served.logged < served.sent:
        return f"the log holds {served.logged} of the {served.sent} rows served"
    if not served.labels_joined or served.refused < 2:
        return f"{served.labels_joined} labels joined and {served.refused} bad requests refused (expected 2)"
    return None if drifted.shifted_drifted else "the shifted batch showed no drift"


def _batched(b: batch.Outcome) -> str | None:
    if (b.rejected, b.scored, b.logged) != (2, b.rows - 2, b.rows - 2):
        return f"{b.scored} of {b.rows} rows scored, {b.rejected} rejected, {b.logged} logged (expected 2 rejects)"
    if b.resumed_parts_skipped != batch.DAYS or not b.labels_joined:
        return f"the resume skipped {b.resumed_parts_skipped} of {batch.DAYS} parts; {b.labels_joined} labels joined"
    return None


def _synced(e: edge.Outcome) -> str | None:
    if "does not match its signed manifest" not in e.tamper_refused:
        return f"the tampered bundle was not refused for its signature: {e.tamper_refused}"
    if e.first_sync_reason is None:
        return "the sync while the server was down did not fail"
    if (e.written, e.logged_from_device) != (e.offline, e.offline) or not e.labels_applied:
        return f"{e.written} of {e.offline} offline rows written, {e.logged_from_device} logged once"
    return None


def _reviewed(r: review.Outcome) -> str | None:
    if not r.held or r.decided < r.held or not r.human_labels:
        return f"{r.held} declines held, {r.decided} decided, {r.human_labels} labels from people"
    return None


def _rolled_back(r: rollout.Outcome) -> str | None:
    candidate, state, reason = r.ended[0]
    return None if state == "rolled_back" else f"the broken release {candidate} ended {state}: {reason}"


def _guarded(a: access.Outcome) -> str | None:
    expected = {"no token": 401, "wrong role": 403, "revoked": 401, "login": 303, "forged form": 403}
    return None if a.statuses == expected else f"callers got {a.statuses}, expected {expected}"


def _watched(m: monitoring.Outcome) -> str | None:
    missing = {"data-drift", "accuracy-drop", "concept-drift"} - set(m.opened)
    if missing:
        return f"no alert from {sorted(missing)} (opened: {m.opened})"
    return None if m.deliveries else "the webhook receiver got nothing"


def _retrained(r: retraining.Outcome) -> str | None:
    if r.state != "promoted":
        return f"the retraining run ended {r.state}, not promoted"
    return None if r.recovered else f"accuracy did not recover: {r.before[-3:]} before, {r.after[-3:]} after"


def _dimmed(c: camera.Outcome) -> str | None:
    if "brightness" not in c.drifted_features:
        return f"the offline report did not flag brightness ({c.drifted_features})"
    return None if c.alert else "the camera-dim alert did not fire"


def _registry(demo: Demo) -> None:
    from matchday.demo import registry_tables

    registry_tables.show(demo.console, demo.ws)


def _pages(demo: Demo) -> list[tuple[str, int]]:
    from matchday.demo import dashboard

    return dashboard.check(demo.console, demo.ws, config_file.server_settings(), demo.credentials)


def _every_page(pages: list[tuple[str, int]]) -> str | None:
    bad = [f"{page} answered {status}" for page, status in pages if status != (303 if page == "/login" else 200)]
    return "; ".join(bad) or None


STEPS: tuple[Step, ...] = (
    Step("train and register: a fraud model, a digits model, a challenger, an alias", _train, _trained),
    Step(
        "deploy in the cloud server: predictions, feedback, bad input refused, drift against the reference",
        _serve,
        _served,
    ),
    Step(
        "score a batch of files: rejects set aside, a resume, watched like live traffic",
        lambda d: batch.run(d.console, d.ws),
        _batched,
    ),
    Step(
        "to the edge: a signed ONNX bundle, a till that scores offline, one sync home",
        lambda d: edge.run(d.console, d.ws),
        _synced,
    ),
    Step(
        "people in the loop: declines held for reviewers, their decisions become labels",
        lambda d: review.run(d.console, d.ws),
        _reviewed,
    ),
    Step(
        "a canary of a broken release, rolled back by itself (then the good challenger, promoted)",
        lambda d: rollout.run(d.console, d.ws),
        _rolled_back,
    ),
    Step(
        "who may do what: tokens, roles, a dashboard login, the audit trail",
        lambda d: access.run(d.console, d.ws, d.champion, d.champion_train),
        _guarded,
    ),
    Step(
        "watch the match: windows, late labels, data and concept drift, alerts to a webhook",
        lambda d: monitoring.run(d.console, d.ws, d.config, config_file.server_settings),
        _watched,
    ),
    Step(
        "a lockdown: concept drift, the accuracy alert, retraining unattended, a promotion, accuracy back",
        lambda d: retraining.run(d.console, d.ws),
        _retrained,
    ),
    Step(
        "the digits camera dims: data drift on image brightness, and its alert",
        lambda d: camera.run(d.console, d.ws, config_file.server_settings()),
        _dimmed,
    ),
    Step("the registry after the match: versions, aliases, lineage", _registry),
)


def run(
    console: Console,
    workspace: Workspace | None = None,
    *,
    serve: bool = True,
    port: int = 8000,
    headless: bool = False,
) -> None:
    """The whole scenario. ``headless``: check every step and raise :class:`DemoStepFailed` at the first that
    did not happen, and check the dashboard's pages instead of serving them; otherwise a failed check is
    reported and the demo goes on, and with ``serve`` it ends serving the dashboard until Ctrl-C."""
    ws = workspace or _fresh_workspace(console)
    try:
        _run(console, ws, serve=serve, port=port, headless=headless)
    finally:
        if workspace is None:
            ws.close()


def _run(console: Console, ws: Workspace, *, serve: bool, port: int, headless: bool) -> None:
    console.rule("[bold]matchday demo")
    console.print(f"metadata: {ws.settings.resolved_database_url}\nartifacts: {ws.settings.resolved_artifact_url}")
    _forget_demo_models(ws)
    with caller.demo_credentials(ws) as credentials:
        _steps(Demo(console, ws, config_file.write(ws), credentials), serve=serve, port=port, headless=headless)


def _steps(demo: Demo, *, serve: bool, port: int, headless: bool) -> None:
    console, ws = demo.console, demo.ws
    steps = [*STEPS, Step("the dashboard: every page of what happened", _pages, _every_page)] if headless else STEPS
    started = time.perf_counter()
    for number, step in enumerate(steps, start=1):
        _run_step(demo, number, len(steps) + (0 if headless else 1), step, headless)
    if headless:
        console.print(f"[green]all {len(steps)} steps happened[/] in {time.perf_counter() - started:.0f}s")
        return
    console.rule(f"{len(steps) + 1}. the dashboard")
    console.print(
        "the store now holds credentials (the till's, the reviewers', the demo's own), so its servers ask every "
        "caller for one: for a day, the demo's admin token works for the CLI's calls and matchday.Client:\n"
        f"  export MATCHDAY_TOKEN={demo.credentials.token}",
        highlight=False,
    )
    if not serve:
        console.print(
            f"not serving the dashboard (--no-serve); `matchday serve` here serves it at http://127.0.0.1:8000/ "
            f"with the demo's monitors (it reads {demo.config}); log in as {demo.credentials.user} with the "
            f"password {demo.credentials.password}",
            highlight=False,
        )
        return
    from matchday.demo import dashboard

    dashboard.serve(console, ws, config_file.server_settings(), demo.credentials, port)


def _run_step(demo: Demo, number: int, total: int, step: Step, headless: bool) -> None:
    """Title, a live progress line while it runs (on a terminal), the check, and a line with its duration."""
    console = demo.console
    console.rule(f"{number}. {step.title}")
    started = time.perf_counter()
    with Progress(
        SpinnerColumn(), TextColumn(f"step {number} of {total}"), TimeElapsedColumn(), console=console, transient=True
    ) as progress:
        progress.add_task("", total=None)
        try:
            outcome = step.run(demo)
        except MatchdayError as exc:  # a part refused what the step asked: the step names itself, in either mode
            raise DemoStepFailed(f"demo step {number} ({step.title}) failed: {exc}") from exc
    took = time.perf_counter() - started
    problem = step.check(outcome)
    if problem is None:
        console.print(f"[green]✓ step {number} done[/] in {took:.1f}s")
        return
    message = f"demo step {number} ({step.title}) did not happen: {problem}"
    if headless:
        raise DemoStepFailed(message)
    console.print(f"[red]✗ {message}[/]")


def _fresh_workspace(console: Console) -> Workspace:
    """The default workspace; a home an earlier demo made is started over, so no window or alert of that run
    shows in this one. A home the demo did not make is kept: only the demo's own models are replaced."""
    settings = load_settings()
    home = settings.home
    if (home / MARKER).exists() and _default_database(settings):
        shutil.rmtree(home)
        console.print(f"starting over: removed {home}/, which an earlier `matchday demo` made")
    fresh = not home.exists()
    home.mkdir(parents=True, exist_ok=True)
    if fresh:
        (home / MARKER).write_text("made by `matchday demo`: the next demo removes this folder and starts over\n")
    return Workspace(settings)


def _default_database(settings: Settings) -> bool:
    """The embedded default: a SQLite file and artifacts under the home, which removing the home removes."""
    return settings.database_url is None and settings.artifact_url is None


def _forget_demo_models(ws: Workspace) -> None:
    for name in DEMO_MODELS:  # in a home the demo did not make, start over for the demo's own models only
        try:
            ws.registry.delete(name, reason="demo reset")
        except ModelNotFound:
            pass
