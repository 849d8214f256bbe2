"""Small scikit-learn models on the breast-cancer data, and a way to register them, for rollout unit tests."""

from __future__ import annotations

from functools import cache
from typing import Any

import pandas as pd

from matchday.workspace import Workspace

REFERENCE_ROWS = 60


@cache
def cancer_frame() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


@cache
def fitted(kind: str) -> tuple[Any, pd.DataFrame]:
    """A model and its reference rows. Kinds: base, better, subset, extra_input, retyped, text_classes, regressor."""
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = cancer_frame()
    target: pd.Series = y
    if kind == "subset":
        X = X[list(X.columns[:10])]
    elif kind == "extra_input":
        X = X.assign(extra=X["mean radius"] * 2)
    elif kind == "retyped":
        X = X.assign(**{"mean radius": X["mean radius"].round().astype("int64")})
    elif kind == "text_classes":
        target = y.map({0: "malignant", 1: "benign"})
    if kind == "regressor":
        model = make_pipeline(StandardScaler(), LinearRegression()).fit(X, y.astype(float))
    else:
        model = make_pipeline(
            StandardScaler(), LogisticRegression(C=0.1 if kind == "better" else 1.0, max_iter=1000)
        ).fit(X, target)
    return model, X.head(REFERENCE_ROWS)


def register(ws: Workspace, name: str, kind: str = "base", alias: str | None = None) -> str:
    """Register a new version of ``name``; returns its ``NAME:VERSION``."""
    model, reference = fitted(kind)
    return ws.registry.register(name, model, reference=reference, alias=alias).ref


def deployed(ws: Workspace, name: str = "cancer", versions: int = 2, ref: str | None = None) -> list[str]:
    """``versions`` versions of model ``name`` (the first is @champion), deployed as ``name`` on ``ref``."""
    refs = [
        register(ws, name, "base" if i == 0 else "better", alias="champion" if i == 0 else None)
        for i in range(versions)
    ]
    ws.deployments.deploy(name, ref or f"{name}@champion")
    return refs
