"""What the retraining pages show of a run, a policy and a retrained version's lineage: plain rows
made from the retraining part's records (``RetrainRunRecord``, ``RetrainPolicy``) and the registry's
``lineage`` dicts, so the templates only lay them out."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from matchday.registry import InvalidModelRef, PinnedRef
from matchday.retrain import RetrainPolicy, RetrainRunRecord
from matchday.store import ModelVersionRecord

RUN_ACTIONS = ("approve", "cancel")
_SHOWN_CHARS = 300  # a step's number that is a whole structure (a rollout plan) is cut here


def trigger_text(trigger: dict[str, Any] | None) -> str:
    """What started a run, in a line: the alert and its number, the schedule, or the hand and its reason.

    >>> trigger_text({"kind": "monitor", "alert": 7, "monitor": "accuracy-drop", "metric": "accuracy", "value": 0.71})
    'alert 7 of monitor accuracy-drop (accuracy = 0.71)'
    >>> trigger_text({"kind": "schedule", "every_seconds": 86400})
    'the schedule (every 1d)'
    >>> trigger_text({"kind": "manual", "reason": "started by user:ann"})
    'by hand: started by user:ann'
    """
    trigger = trigger or {}
    kind = trigger.get("kind")
    if kind == "monitor":
        value = trigger.get("value")
        shown = f" ({trigger.get('metric')} = {value:.4g})" if isinstance(value, int | float) else ""
        return f"alert {trigger.get('alert')} of monitor {trigger.get('monitor')}{shown}"
    if kind == "schedule":
        return f"the schedule (every {duration_text(trigger.get('every_seconds'))})"
    if kind == "manual":
        return f"by hand: {trigger.get('reason') or 'no reason given'}"
    return str(kind or "unknown")


def duration_text(seconds: Any) -> str:
    """Seconds as the largest whole unit that fits: ``6h``, ``30m``, ``90s``; a dash for none.

    >>> [duration_text(s) for s in (21600, 1800, 90, 7 * 86400, None)]
    ['6h', '30m', '90s', '7d', '–']
    """
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "–"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def model_link(ref: str | None) -> str | None:
    """The model page of a run's parent or candidate (``model:version``): the model's name, or None."""
    if not ref:
        return None
    try:
        return PinnedRef.parse(ref).name
    except InvalidModelRef:
        return None


def run_row(run: RetrainRunRecord) -> dict[str, Any]:
    """A run as a line of the runs' table."""
    evaluation = run.evaluation or {}
    return {
        "id": run.id,
        "deployment": run.deployment,
        "state": run.state,
        "active": run.finished_at is None,
        "trigger": trigger_text(run.trigger),
        "trigger_kind": (run.trigger or {}).get("kind"),
        "actor": run.actor,
        "parent": run.parent,
        "candidate": run.candidate,
        "candidate_model": model_link(run.candidate),
        "evaluation": evaluation or None,
        "accepted": evaluation.get("accepted"),
        "reason": run.reason or run.error,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
    }


def step_rows(run: RetrainRunRecord) -> list[dict[str, Any]]:
    """The run's trail, oldest first, each step with its time read back and its numbers as text."""
    rows = []
    for step in run.steps:
        rows.append(
            {
                "state": step.get("state") or "",
                "at": _time(step.get("at")),
                "message": step.get("message") or "",
                "numbers": numbers(step.get("data") or {}),
            }
        )
    return rows


def numbers(data: dict[str, Any]) -> list[tuple[str, str]]:
    """A step's numbers as (name, text): scalars as they are, small mappings as ``k=v`` lists; the
    evaluation report is shown whole on the page, so it is only pointed to here.

    >>> numbers({"rows": {"production": 300, "holdout": 100}, "engine": "local", "evaluation": {"gain": 0.2}})
    [('rows', 'production=300, holdout=100'), ('engine', 'local'), ('evaluation', 'the report below')]
    """
    out = []
    for key, value in data.items():
        if key == "evaluation" and isinstance(value, dict):
            out.append((key, "the report below"))
        elif isinstance(value, dict) and all(not isinstance(v, dict | list) for v in value.values()):
            out.append((key, ", ".join(f"{k}={_scalar(v)}" for k, v in value.items())))
        elif isinstance(value, dict | list):
            text = json.dumps(value, default=str, separators=(", ", ": "))
            out.append((key, text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"))
        else:
            out.append((key, _scalar(value)))
    return out


def snapshot_window(snapshot: dict[str, Any] | None) -> tuple[datetime, datetime] | None:
    """The production window a run's data was read from, as times (the snapshot stores ISO text)."""
    window = (snapshot or {}).get("window") or {}
    since, until = _time(window.get("since")), _time(window.get("until"))
    return (since, until) if since is not None and until is not None else None


def policy_row(policy: RetrainPolicy, latest: RetrainRunRecord | None) -> dict[str, Any]:
    """A policy in force, and what its deployment's newest run is doing (whether one is active)."""
    t, g = policy.triggers, policy.guards
    triggers = []
    if t.monitors:
        triggers.append("alerts of " + ", ".join(t.monitors))
    if t.schedule is not None:
        triggers.append(f"every {duration_text(t.schedule)}")
    if t.min_new_labels:
        triggers.append(f"once {t.min_new_labels:,} new labels are in")
    guards = [
        f"cooldown {duration_text(g.cooldown)}",
        f"at most {g.max_per_day} a day",
        f"stop after {g.stop_after_rejections} rejection{'' if g.stop_after_rejections == 1 else 's'} in a row",
        "an operator approves before rollout" if g.approval == "before_rollout" else "no approval needed",
    ]
    accept = f"{policy.accept.metric or 'accuracy (MAE for a regression)'} gain ≥ {policy.accept.min_gain:+g}"
    if policy.accept.no_worse_segments:
        accept += f", no worse in {', '.join(policy.accept.no_worse_segments)}"
    return {
        "deployment": policy.deployment,
        "trainer": policy.trainer,
        "triggers": triggers,
        "guards": guards,
        "accept": accept,
        "active": latest if latest is not None and latest.finished_at is None else None,
        "last": latest if latest is not None and latest.finished_at is not None else None,
    }


def lineage_rows(versions: list[ModelVersionRecord]) -> list[dict[str, Any]]:
    """Each retrained version of a model, newest first: its chain back to the first version that was
    not retrained (read from the versions at hand: a retrained version's parent is of the same model),
    the trigger, the run, the evaluation's gain and the rollout's outcome."""
    by_ref = {v.ref: v for v in versions}
    rows = []
    for v in sorted(versions, key=lambda v: v.version, reverse=True):
        lineage = v.lineage
        if not lineage:
            continue
        chain = [v.ref]
        parent = lineage.get("parent")
        while parent and parent not in chain and len(chain) < 20:
            chain.append(parent)
            parent = (by_ref[parent].lineage or {}).get("parent") if parent in by_ref else None
        rollout = lineage.get("rollout") or None
        rows.append(
            {
                "version": v.version,
                "ref": v.ref,
                "chain": list(reversed(chain)),  # oldest first: parent ← version reads left to right
                "trigger": trigger_text(lineage.get("trigger")),
                "run": lineage.get("run"),
                "deployment": lineage.get("deployment"),
                "trainer": lineage.get("trainer"),
                "evaluation": lineage.get("evaluation") or None,
                "rollout": rollout,
                "rows": (lineage.get("data") or {}).get("rows") or {},
            }
        )
    return rows


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _scalar(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
