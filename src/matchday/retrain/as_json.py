"""Retraining runs and policies as JSON: one shape for the CLI's ``--json``, the API and the dashboard."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from matchday.retrain.policy import RetrainPolicy
from matchday.store import RetrainRunRecord


class RunJson(TypedDict):
    """A retraining run as the API answers it (``GET /v1/retrain/runs/{run_id}``)."""

    id: int
    deployment: str
    state: str
    active: bool
    trigger: dict[str, Any]
    actor: str
    parent: str | None
    candidate: str | None
    gain: float | None  # the evaluation's gain of the candidate over the champion, once evaluated
    evaluation: dict[str, Any] | None
    snapshot: dict[str, Any] | None
    rollout_id: int | None
    steps: list[dict[str, Any]]
    reason: str | None
    error: str | None
    attempts: int
    next_attempt_at: str | None
    owner: str | None
    heartbeat_at: str | None
    policy: dict[str, Any]
    created_at: str
    updated_at: str
    finished_at: str | None


def run_json(run: RetrainRunRecord) -> RunJson:
    """Every field of a run, times as ISO 8601 (UTC).

    The trail (``steps``) is kept as stored: each entry's ``state``, ``at``, ``message`` and ``data``.
    """
    evaluation = run.evaluation
    gain = evaluation.get("gain") if evaluation else None
    return {
        "id": run.id,
        "deployment": run.deployment,
        "state": run.state,
        "active": run.finished_at is None,
        "trigger": run.trigger,
        "actor": run.actor,
        "parent": run.parent,
        "candidate": run.candidate,
        "gain": float(gain) if isinstance(gain, int | float) else None,
        "evaluation": evaluation,
        "snapshot": run.snapshot,
        "rollout_id": run.rollout_id,
        "steps": run.steps,
        "reason": run.reason,
        "error": run.error,
        "attempts": run.attempts,
        "next_attempt_at": _iso(run.next_attempt_at),
        "owner": run.owner,
        "heartbeat_at": _iso(run.heartbeat_at),
        "policy": run.policy,
        "created_at": run.created_at.isoformat(),
        "updated_at": run.updated_at.isoformat(),
        "finished_at": _iso(run.finished_at),
    }


def policy_json(policy: RetrainPolicy) -> dict[str, Any]:
    """The effective policy: every field, the defaults filled in, durations in seconds."""
    return policy.model_dump(mode="json")


def trigger_text(trigger: dict[str, Any]) -> str:
    """A trigger in a few words: ``monitor accuracy-drop (alert 7)``, ``schedule``, ``manual``.

    >>> trigger_text({"kind": "monitor", "monitor": "accuracy-drop", "alert": 7})
    'monitor accuracy-drop (alert 7)'
    >>> trigger_text({"kind": "manual", "reason": "new data"})
    'manual'
    """
    kind = str(trigger.get("kind", "-"))
    if kind == "monitor":
        return f"monitor {trigger.get('monitor')} (alert {trigger.get('alert')})"
    return kind


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None
