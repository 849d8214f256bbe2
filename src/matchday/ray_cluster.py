"""Ray, joined once per process: the cluster at an address, or a local one of two CPUs (this machine's
kind) with usage stats off. Retraining's and batch scoring's Ray engines both start it here."""

from __future__ import annotations

import os
from typing import Any


class RayMissing(ImportError):
    """Ray is not installed: it comes with the ``ray`` extra."""


def connect(address: str | None = None) -> Any:
    """The ``ray`` module, initialised: ``ray.init(address=...)`` for a cluster, else a local two-CPU one."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - the [ray] extra is in dev
        raise RayMissing("Ray is not installed: pip install 'matchday[ray]'") from exc
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if address:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        else:
            ray.init(num_cpus=2, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    return ray
