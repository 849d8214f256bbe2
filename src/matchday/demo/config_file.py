"""The ``matchday.yaml`` the demo writes into its home and runs its servers with: the payments monitors,
the camera's images and its brightness monitor. ``MATCHDAY_CONFIG=<home>/matchday.yaml matchday serve``
afterwards watches the demo's deployments as the demo did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from matchday.config import MonitoringSettings
from matchday.demo.camera import DEPLOYMENT as CAMERA
from matchday.demo.camera import camera_monitor
from matchday.demo.monitoring import WINDOW, demo_monitors
from matchday.workspace import Workspace


def config(webhook: str | None = None) -> dict[str, Any]:
    """The file's content; ``webhook`` adds a webhook action to the payments monitors."""
    return {
        "monitoring": {"count_window": WINDOW, "images": {CAMERA: ["pixel_*"]}},
        "monitors": [*demo_monitors(webhook), camera_monitor()],
    }


def server_settings(webhook: str | None = None) -> dict[str, Any]:
    """The same, as the settings a demo server runs with."""
    content = config(webhook)
    return {"monitoring": MonitoringSettings(**content["monitoring"]), "monitors": content["monitors"]}


def write(ws: Workspace) -> Path:
    """Write the file into the demo's home (without the demo's webhook receiver, which ends with the demo)."""
    path = ws.settings.home / "matchday.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config(), sort_keys=False))
    return path
