"""The JSON shapes of models, versions and alias moves: one for the HTTP API and the CLI's ``--json``."""

from __future__ import annotations

from typing import Any

from matchday.store import AliasMove, ModelRecord, ModelVersionRecord


def model_json(m: ModelRecord) -> dict[str, Any]:
    return {
        "name": m.name,
        "description": m.description,
        "latest_version": m.latest_version,
        "aliases": m.aliases,
        "created_at": m.created_at.isoformat(),
    }


def version_json(v: ModelVersionRecord, *, signature: bool = False) -> dict[str, Any]:
    """A version without its signature unless asked (it lists every input)."""
    out = {
        "name": v.name,
        "version": v.version,
        "ref": v.ref,
        "flavor": v.flavor,
        "aliases": list(v.aliases),
        "artifact_sha256": v.artifact_sha256,
        "artifact_size": v.artifact_size,
        "task": v.signature["output"]["task"],
        "metrics": v.metrics,
        "tags": v.tags,
        "description": v.description,
        "created_at": v.created_at.isoformat(),
        "lineage": v.lineage,
    }
    if signature:
        out["signature"] = v.signature
    return out


def move_json(m: AliasMove) -> dict[str, Any]:
    return {
        "alias": m.alias,
        "from_version": m.from_version,
        "to_version": m.to_version,
        "reason": m.reason,
        "at": m.at.isoformat(),
    }
