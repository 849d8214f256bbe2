"""A workspace: the settings resolved into one open store and registry, shared by CLI and API."""

from __future__ import annotations

import threading
from functools import cached_property

from matchday.config import Settings, load_settings
from matchday.registry import ArtifactStore, Registry
from matchday.rollout import Deployments, Rollouts
from matchday.store import Database, DeploymentStore, EventStore, ModelStore, PredictionLogStore, RolloutStore


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
    def deployments(self) -> Deployments:
        return Deployments(DeploymentStore(self.database), self.registry, RolloutStore(self.database))

    @cached_property
    def rollouts(self) -> Rollouts:
        return Rollouts(RolloutStore(self.database), EventStore(self.database), self.deployments, self.registry,
                        PredictionLogStore(self.database), self.settings.rollouts)

    def close(self) -> None:
        if "database" in self.__dict__:
            self.database.dispose()


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
