"""Deployments: a named endpoint and the model reference it serves, and its traffic plan.

A deployment of ``MODEL@ALIAS`` follows the alias: when it moves, the next request is routed to the
new version (every process re-resolves within `ROUTE_TTL_SECONDS`). While a rollout runs, its
baseline and candidate are fixed versions and its state in the database decides the split.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from matchday.registry import ModelRef, PinnedRef, Registry
from matchday.rollout.errors import RolloutError
from matchday.rollout.traffic import Route, TrafficPlan
from matchday.store import DeploymentRecord, DeploymentStore, NotFound, RolloutRecord, RolloutStore

_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,99}\Z")


class DeploymentSettings(BaseModel):
    """Per-deployment serving knobs, stored with the deployment."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(default=64, ge=1, le=100_000, description="rows merged into one model call at most")
    max_wait_ms: float = Field(default=0.0, ge=0, le=1000, description="how long a batch waits for more requests")
    max_rows: int = Field(default=10_000, ge=1, le=1_000_000, description="rows accepted in one request")
    automation: dict[str, Any] = Field(
        default_factory=dict, description="who decides its answers (the review part's policy; none: the model alone)"
    )


class Deployments:
    def __init__(self, store: DeploymentStore, registry: Registry, rollouts: RolloutStore) -> None:
        self.store = store
        self.registry = registry
        self.rollouts = rollouts

    def deploy(
        self, name: str, model_ref: str, settings: dict[str, Any] | None = None
    ) -> tuple[DeploymentRecord, str | None]:
        """Create or repoint deployment ``name``; the model reference must resolve now."""
        if not _NAME.match(name):
            raise RolloutError(f"invalid deployment name {name!r}: lowercase letters, digits, '_' or '-' (up to 100)")
        ref = ModelRef.parse(model_ref)
        self.registry.get_version(ref)  # raises ModelNotFound / VersionNotFound / AliasNotFound
        settings = dict(settings or {})
        if "automation" not in settings:  # a redeploy keeps who decides its answers unless it says otherwise
            try:
                settings["automation"] = self.store.get(name).settings.get("automation") or {}
            except NotFound:
                pass
        try:
            parsed = DeploymentSettings(**settings)
        except ValidationError as exc:
            raise RolloutError(
                "invalid deployment settings", [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            ) from exc
        if ref.version is None and ref.alias is None:
            raise RolloutError(
                f"deploy a fixed version or an alias ({ref.name}:N or {ref.name}@champion), not {model_ref!r}"
            )
        self._refuse_during_rollout(name, "repointed")
        return self.store.upsert(name, str(ref), parsed.model_dump())

    def get(self, name: str) -> DeploymentRecord:
        return self.store.get(name)

    def list(self) -> list[DeploymentRecord]:
        return self.store.list()

    def delete(self, name: str) -> None:
        self._refuse_during_rollout(name, "deleted")
        self.store.delete(name)

    def _refuse_during_rollout(self, name: str, what: str) -> None:
        active = self.rollouts.active(name)
        if active is not None:
            raise RolloutError(
                f"deployment {name!r} has a {active.strategy} rollout in progress "
                f"({active.baseline} -> {active.candidate}); it cannot be {what} until that rollout "
                "is promoted or rolled back"
            )

    def update_settings(self, name: str, changes: dict[str, Any]) -> DeploymentRecord:
        """Change some of the deployment's settings (allowed during a rollout: where it points stays)."""

        def change(current: dict[str, Any]) -> dict[str, Any]:
            try:
                return DeploymentSettings(**{**current, **changes}).model_dump()
            except ValidationError as exc:
                problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
                raise RolloutError("invalid deployment settings", problems) from exc

        return self.store.change_settings(name, change)

    def settings(self, record: DeploymentRecord) -> DeploymentSettings:
        return DeploymentSettings(**record.settings)

    def route(self, name: str) -> TrafficPlan:
        """Where the deployment's rows go now: one version, or the split of its active rollout."""
        record = self.store.get(name)
        rollout = self.rollouts.active(name)
        if rollout is None:
            resolved = self.registry.pin(record.model_ref)
            return TrafficPlan(name, Route(name, resolved.name, resolved.version, record.model_ref))
        return traffic_plan(rollout)

    def promote(self, name: str, candidate: str, reason: str) -> str:
        """Point the deployment at ``candidate``: move the alias it follows, else repoint it. Says which."""
        record = self.store.get(name)
        current = ModelRef.parse(record.model_ref)
        target = PinnedRef.parse(candidate)
        if current.alias and current.name == target.name:
            self.registry.set_alias(target.name, target.version, current.alias, reason)
            return f"alias {target.name}@{current.alias} now points to version {target.version}"
        self.store.upsert(name, candidate, record.settings)
        return f"deployment {name!r} now serves {candidate}"


def traffic_plan(rollout: RolloutRecord) -> TrafficPlan:
    """The split an active rollout asks for, the same in every process that reads it."""
    baseline, candidate = PinnedRef.parse(rollout.baseline), PinnedRef.parse(rollout.candidate)
    primary = Route(
        rollout.deployment,
        baseline.name,
        baseline.version,
        rollout.baseline,
        arm="baseline",
        plan=rollout.strategy,
        rollout_id=rollout.id,
        step=rollout.step,
    )
    # a shadow rollout mirrors throughout; a canary with shadow_first mirrors (all rows) until its first step
    mirroring = rollout.strategy == "shadow" or (rollout.strategy == "canary" and rollout.phase == "shadow")
    other = Route(
        rollout.deployment,
        candidate.name,
        candidate.version,
        rollout.candidate,
        arm="shadow" if mirroring else "candidate",
        plan=rollout.strategy,
        rollout_id=rollout.id,
        step=rollout.step,
    )
    plan = rollout.plan
    shadow_share = (plan.get("share") or 100.0) / 100 if mirroring else 0.0
    # every process loads the candidate as soon as it sees the plan, so no request pays for the load
    # (and a canary's latency is not its cold start); blue-green also keeps the old version for the switch back
    warm: tuple[Route, ...] = (other, primary) if rollout.strategy == "bluegreen" else (other,)
    return TrafficPlan(
        rollout.deployment,
        primary,
        other,
        candidate_share=rollout.weight / 100,
        shadow_share=shadow_share,
        fallback=bool(plan.get("fallback")),
        warm=warm,
        salt=f"rollout-{rollout.id}",
    )
