"""The guards between a trigger and a run: cooldown, a daily cap, a stop after rejections in a row.

Pure functions of the policy, the deployment's past runs and the time, so the worker and the dry run
(`simulate`) decide alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from matchday.retrain.policy import Guards
from matchday.store import RetrainRunRecord

FINISHED = ("promoted", "rejected", "failed", "cancelled")


@dataclass(frozen=True)
class PastRun:
    """What the guards need of an earlier run."""

    state: str
    created_at: datetime
    finished_at: datetime | None
    manual: bool = False


def past_run(run: RetrainRunRecord) -> PastRun:
    return PastRun(run.state, run.created_at, run.finished_at, manual=run.trigger.get("kind") == "manual")


def blocked(guards: Guards, past: list[PastRun], now: datetime) -> str | None:
    """Why a triggered run may not start now (None: it may). ``past`` is newest first."""
    active = [r for r in past if r.finished_at is None]
    if active:
        return "a run is already in progress"
    ended = [r for r in past if r.finished_at is not None]
    if ended:
        last = max(r.finished_at for r in ended if r.finished_at is not None)
        wait = last + timedelta(seconds=guards.cooldown) - now
        if wait > timedelta(0):
            return f"cooldown: the last run ended {_ago(now - last)} ago; {guards.cooldown:.0f}s must pass ({_ago(wait)} left)"
    today = [r for r in past if r.created_at > now - timedelta(days=1)]
    if len(today) >= guards.max_per_day:
        return f"max_per_day: {len(today)} runs in the last 24h (at most {guards.max_per_day})"
    streak = rejections_in_a_row(past)
    if streak >= guards.stop_after_rejections:
        return (
            f"stop_after_rejections: the last {streak} runs were rejected; triggers are stopped until "
            "someone starts a run by hand (`matchday retrain run`) or one is promoted"
        )
    return None


def rejections_in_a_row(past: list[PastRun]) -> int:
    """Rejected runs since the last promoted or hand-started one (newest first; failures and cancels skipped)."""
    streak = 0
    for run in past:
        if run.state == "rejected":
            streak += 1
            if run.manual:
                break
        elif run.state == "promoted" or run.manual:
            break
    return streak


def _ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"
