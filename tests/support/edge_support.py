"""Small models and their exported bundles, shared by the edge tests (export, runtime, sync)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from matchday.config import Settings
from matchday.workspace import Workspace

FEATURES = ["a", "b", "c", "n"]


def frame(rows: int = 400, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    """Three float features, one integer, a string one, a binary label and a numeric target."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(rng.normal(shift, 1.0, size=(rows, 3)), columns=["a", "b", "c"])
    data["n"] = rng.integers(0, 5, rows)
    data["shop"] = rng.choice(["north", "south", "east"], rows)
    data["y"] = ((data["a"] + data["b"] + 0.3 * data["n"] + rng.normal(0, 0.5, rows)) > 0.6).astype(int)
    data["spend"] = 3 * data["a"] - data["c"] + data["n"]
    return data


class UnconvertibleClassifier(LogisticRegression):
    """A scikit-learn classifier skl2onnx has no converter for (it knows classes by their exact type)."""


@dataclass
class Exported:
    """A workspace with models registered and deployed, and bundles exported from them."""

    ws: Workspace
    public_key: str
    bundles: dict[str, Path]
    models: dict[str, Any]


def workspace(folder: Path) -> Workspace:
    return Workspace(Settings(home=folder / "home", database_url=f"sqlite:///{folder / 'matchday.db'}"))


def register_models(ws: Workspace) -> dict[str, Any]:
    """lr (float matrix), rf (a forest), mixed (a string column: one tensor per column), spend (a regressor)."""
    data = frame()
    numeric = data[FEATURES]
    mixed_inputs = data[[*FEATURES, "shop"]]
    models: dict[str, Any] = {
        "lr": make_pipeline(StandardScaler(), LogisticRegression()).fit(numeric, data["y"]),
        "rf": RandomForestClassifier(n_estimators=15, max_depth=5, random_state=0).fit(numeric, data["y"]),
        "mixed": make_pipeline(
            ColumnTransformer(
                [("num", StandardScaler(), FEATURES), ("cat", OneHotEncoder(handle_unknown="ignore"), ["shop"])]
            ),
            LogisticRegression(),
        ).fit(mixed_inputs, data["y"]),
        "spend": LinearRegression().fit(numeric, data["spend"]),
    }
    for name, model in models.items():
        inputs = mixed_inputs if name == "mixed" else numeric
        target = "spend" if name == "spend" else "y"
        ws.registry.register(name, model, reference=inputs.assign(**{target: data[target]}), target=target)
        ws.deployments.deploy(name if name != "lr" else "checkout", f"{name}:1")
    return models


def export_all(folder: Path) -> Exported:
    from matchday.edge import export_bundle

    ws = workspace(folder)
    models = register_models(ws)
    bundles = {}
    for name in models:
        deployment = "checkout" if name == "lr" else name
        bundles[name] = export_bundle(
            ws.registry, f"{name}:1", folder / f"bundle-{name}", signer=ws.edge_signer, deployment=deployment
        ).path
    return Exported(ws, ws.edge_signer.public_key_hex, bundles, models)
