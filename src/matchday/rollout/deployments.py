"""Deployments: a named endpoint and the model reference it serves, and routing to a version.

A deployment of ``MODEL@ALIAS`` follows the alias: when it moves, the next request is routed to the
new version (every process re-resolves within `ROUTE_TTL_SECONDS`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from matchday.errors import MatchdayError
from matchday.registry import ModelRef, Registry
from matchday.store import DeploymentRecord, DeploymentStore

_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,99}$")


class RolloutError(MatchdayError):
    """Root of the rollout part's errors."""


class DeploymentSettings(BaseModel):
    """Per-deployment serving knobs, stored with the deployment."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(64, ge=1, le=100_000, description="rows merged into one model call at most")
    max_wait_ms: float = Field(0.0, ge=0, le=1000, description="how long a batch waits for more requests")
    max_rows: int = Field(10_000, ge=1, le=1_000_000, description="rows accepted in one request")


@dataclass(frozen=True)
class Route:
    """Which version answers a deployment's request, and why (kept in the prediction log)."""

    deployment: str
    model: str
    version: int
    model_ref: str

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"

    def as_log(self) -> dict[str, Any]:
        return {"plan": "single", "model_ref": self.model_ref}


class Deployments:
    def __init__(self, store: DeploymentStore, registry: Registry) -> None:
        self.store = store
        self.registry = registry

    def deploy(self, name: str, model_ref: str, settings: dict[str, Any] | None = None) -> tuple[DeploymentRecord, str | None]:
        """Create or repoint deployment ``name``; the model reference must resolve now."""
        if not _NAME.match(name):
            raise RolloutError(f"invalid deployment name {name!r}: lowercase letters, digits, '_' or '-' (up to 100)")
        ref = ModelRef.parse(model_ref)
        self.registry.get_version(ref)  # raises ModelNotFound / VersionNotFound / AliasNotFound
        try:
            parsed = DeploymentSettings(**(settings or {}))
        except ValidationError as exc:
            raise RolloutError("invalid deployment settings",
                               [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]) from exc
        if ref.version is None and ref.alias is None:
            raise RolloutError(f"deploy a fixed version or an alias ({ref.name}:N or {ref.name}@champion), not {model_ref!r}")
        return self.store.upsert(name, str(ref), parsed.model_dump())

    def get(self, name: str) -> DeploymentRecord:
        return self.store.get(name)

    def list(self) -> list[DeploymentRecord]:
        return self.store.list()

    def delete(self, name: str) -> None:
        self.store.delete(name)

    def settings(self, record: DeploymentRecord) -> DeploymentSettings:
        return DeploymentSettings(**record.settings)

    def route(self, name: str) -> Route:
        record = self.store.get(name)
        resolved = self.registry.resolve(record.model_ref)
        assert resolved.version is not None
        return Route(name, resolved.name, resolved.version, record.model_ref)
