"""What the store hands out: plain frozen records, never ORM rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ModelRecord:
    name: str
    description: str | None
    created_at: datetime
    latest_version: int | None
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersionRecord:
    name: str
    version: int
    flavor: str
    artifact_sha256: str
    artifact_size: int
    flavor_options: dict[str, Any]
    signature: dict[str, Any]
    metrics: dict[str, Any]
    tags: dict[str, Any]
    description: str | None
    created_at: datetime
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class AliasMove:
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    reason: str | None
    at: datetime
