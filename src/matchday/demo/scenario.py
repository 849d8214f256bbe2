"""The scenario `make demo` runs: train, register and inspect models, as a new user first would."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console

from matchday.demo.fraud import fraud_pipeline, transactions
from matchday.registry import ModelNotFound
from matchday.workspace import Workspace, default_workspace

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

DEMO_MODELS = ("demo-fraud", "demo-digits")


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


def run(console: Console, workspace: Workspace | None = None, *, serve: bool = True, port: int = 8000) -> None:
    """The whole scenario; with ``serve``, it ends by serving the dashboard over its data until Ctrl-C."""
    ws = workspace or default_workspace()
    registry = ws.registry
    console.rule("[bold]matchday demo")
    console.print(f"metadata: {ws.settings.resolved_database_url}\nartifacts: {ws.settings.resolved_artifact_url}")
    for name in DEMO_MODELS:  # start from a clean slate for the demo's own models only
        try:
            registry.delete(name, reason="demo reset")
        except ModelNotFound:
            pass

    console.rule("1. train and register")
    started = time.perf_counter()
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
        f"registered {v1.ref} (test accuracy {fraud_acc:.3f}) and demo-digits:1 (test accuracy "
        f"{digits_acc:.3f}) in {time.perf_counter() - started:.1f}s"
    )

    console.rule("2. a challenger, and the alias history")
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
    champion_model = fraud
    if challenger_acc > fraud_acc:
        registry.set_alias("demo-fraud", v2.version, "champion", reason=f"challenger wins: {comparison}")
        champion_model = challenger
        console.print(f"challenger {v2.ref} promoted to @champion ({comparison})")
    else:
        console.print(f"challenger {v2.ref} not promoted ({comparison}): @champion stays on {v1.ref}")

    console.rule("3. load by alias: same predictions as the trained model")
    loaded = registry.load("demo-fraud@champion")
    sample = transactions(2_000, seed=99)
    same = np.array_equal(loaded.predict(sample), champion_model.predict(sample.drop_columns(["is_fraud"]).to_pandas()))
    console.print(f"loaded {loaded.ref} ({loaded.flavor}); predictions identical to the in-memory model: {same}")

    console.rule("4. serve it: predictions, feedback, metrics")
    from matchday.demo import serving

    serving.run(console, ws)

    console.rule("5. roll out safely: canary analysis, automatic rollback and promotion")
    from matchday.demo import rollout

    rollout.run(console, ws)

    console.rule("6. watch the inputs: data drift")
    from matchday.demo import drift

    drift.run(console, ws)

    console.rule("7. watch the match: windows, late labels, data and concept drift, alerts")
    from matchday.demo import monitoring

    monitoring.run(console, ws)

    from matchday.cli import models_list, models_show

    console.rule("$ matchday models list")
    models_list(as_json=False)
    console.rule("$ matchday models show demo-fraud")
    models_show("demo-fraud", as_json=False)
    console.rule("$ matchday models show demo-fraud@champion")
    models_show("demo-fraud@champion", as_json=False)

    console.rule("8. who may do what: tokens, roles, a dashboard login, the audit trail")
    from matchday.demo import access

    access.run(console, ws, champion_model, challenger_train if champion_model is challenger else fraud_train)

    console.rule("9. people in the loop: held declines, reviewers, decisions that become labels")
    from matchday.demo import review

    review.run(console, ws)

    console.rule("10. close the loop: a lockdown, the accuracy alert, retraining unattended, a promotion")
    from matchday.demo import retraining

    retraining.run(console, ws)

    console.rule("11. score in batches: files in, files out, rejects, resume, watched like live traffic")
    from matchday.demo import batch

    batch.run(console, ws)

    console.rule("12. to the edge: a signed ONNX bundle, a till that scores offline, telemetry that comes home")
    from matchday.demo import edge

    edge.run(console, ws)

    console.rule("13. the dashboard")
    if not serve:
        console.print("not serving the dashboard (--no-serve); `matchday serve` serves it at http://127.0.0.1:8000/")
        return
    from matchday.demo import dashboard

    dashboard.serve(console, ws, port)
