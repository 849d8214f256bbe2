"""What the tests of retraining's surfaces (CLI, HTTP) share: a policy that runs in seconds, matchday.yaml
holding it, the champion deployed, and labelled answers of the new concept in the log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from matchday.workspace import Workspace
from support.retrain_support import champion_model
from support.rollout_support import cancer_frame


def policy(deployment: str = "cancer", **over: Any) -> dict[str, Any]:
    """A policy these tests can run in seconds: the schedule's ticks give the dry run something to replay."""
    base: dict[str, Any] = {
        "deployment": deployment,
        "trainer": "support.retrain_support:train",
        "triggers": {"monitors": ["accuracy-drop"], "schedule": "6h"},
        "data": {"reference": False, "production": {"window": "1d"}},
        "holdout": {"newest": 0.25, "min_rows": 40},
        "rollout": {"steps": [50, 100], "interval": "1s", "min_requests": 20, "gates": {"min_labels": 20}},
        "guards": {"approval": "before_rollout"},
    }
    return {**base, **over}


def write_config(folder: Path, *policies: dict[str, Any]) -> Path:
    path = folder / "matchday.yaml"
    path.write_text(yaml.safe_dump({"retrain": list(policies)}, sort_keys=False))
    return path


def set_up(ws: Workspace, deployment: str = "cancer") -> None:
    """The champion (cancer:1, trained on the old concept) deployed as ``deployment``."""
    if not ws.registry.list_models():
        X, y = cancer_frame()
        ws.registry.register(
            "cancer",
            champion_model(),
            reference=X.head(200).assign(label=y.head(200)),
            target="label",
            alias="champion",
        )
    ws.deployments.deploy(deployment, "cancer@champion")
