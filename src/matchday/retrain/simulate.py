"""The dry run: when would a policy have fired over the stored windows, and what would its guards have done.

Replays each trigger monitor's verdicts on the deployment's stored windows in time order (an alert
opens after ``breaches`` breaches in a row, as the monitoring loop opens one), adds the schedule's
ticks, and passes each trigger through the guards and ``min_new_labels`` as the worker would. A
simulated run is taken to end when it starts (its training time is unknown), and its outcome is
unknown, so ``stop_after_rejections`` is not replayed: the report says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from matchday.durations import parse_duration
from matchday.retrain.guards import PastRun, blocked
from matchday.retrain.policy import RetrainPolicy

MAX_PERIOD_DAYS = 3660  # a dry run looks back at most ten years
Verdicts = Callable[[str, datetime], list[tuple[datetime, bool | None, float | None]]]  # (monitor, since)
CountLabels = Callable[..., int]
MAX_MOMENTS = 2000  # triggers replayed at most (each costs two counts): a 1s schedule over a year is not


@dataclass(frozen=True)
class SimulatedTrigger:
    at: datetime
    trigger: str
    outcome: str  # "run" or "suppressed"
    reason: str | None
    labelled_rows: int  # labelled rows of the data window, as known at that time
    holdout_rows: int
    new_labels: int


@dataclass
class Simulation:
    deployment: str
    since: datetime
    until: datetime
    windows: dict[str, int] = field(default_factory=dict)  # windows replayed per monitor
    triggers: list[SimulatedTrigger] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return sum(1 for t in self.triggers if t.outcome == "run")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["since"], out["until"] = self.since.isoformat(), self.until.isoformat()
        out["runs"] = self.runs
        for t in out["triggers"]:
            t["at"] = t["at"].isoformat()
        return out


def period_start(since: str, now: datetime) -> datetime:
    """When a dry run starts: ``since`` is a duration back from ``now`` (``30d``, ``12h``) or an ISO 8601 time
    (UTC when it names no zone). A ValueError says what is wrong.

    >>> period_start("30d", datetime(2026, 3, 31, tzinfo=UTC)).isoformat()
    '2026-03-01T00:00:00+00:00'
    >>> period_start("2026-03-01T12:00", datetime(2026, 3, 31, tzinfo=UTC)).isoformat()
    '2026-03-01T12:00:00+00:00'
    """
    text = since.strip()
    try:
        start = now - timedelta(seconds=parse_duration(text))
    except ValueError:
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{since!r} is neither a duration (30d, 12h) nor an ISO 8601 time") from None
        start = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{since!r} reaches back more than {MAX_PERIOD_DAYS} days") from None
    if start >= now:
        raise ValueError(f"{since!r} is not in the past")
    if now - start > timedelta(days=MAX_PERIOD_DAYS):
        raise ValueError(f"{since!r} reaches back more than {MAX_PERIOD_DAYS} days")
    return start


def simulate(
    deployment: str,
    policy: RetrainPolicy,
    breaches: dict[str, int],
    verdicts: Verdicts,
    count_labels: CountLabels,
    since: datetime,
    until: datetime,
    history: list[PastRun] | None = None,
) -> Simulation:
    """``breaches``: each trigger monitor's breaches in a row to open an alert; ``verdicts(monitor, since)``
    its verdicts on the stored windows: (window end, breached or None when it could not judge, value);
    ``history``: the deployment's real runs that began before ``since`` (the guards start from them)."""
    report = Simulation(deployment, since, until)
    moments: list[tuple[datetime, str]] = []
    for name in policy.triggers.monitors:
        series = sorted(verdicts(name, since), key=lambda v: v[0])
        report.windows[name] = len(series)
        streak, open_ = 0, False
        for end, breached, value in series:
            if breached is None:
                continue
            if breached:
                streak += 1
                if streak >= breaches.get(name, 1) and not open_:
                    open_ = True
                    shown = "" if value is None else f" ({value:.4g})"
                    moments.append((end, f"monitor {name}{shown}"))
            else:
                streak, open_ = 0, False
    if policy.triggers.schedule is not None:
        tick = since + timedelta(seconds=policy.triggers.schedule)
        while tick <= until and len(moments) < MAX_MOMENTS:
            moments.append((tick, "schedule"))
            tick += timedelta(seconds=policy.triggers.schedule)
        if tick <= until:
            report.notes.append(
                f"the schedule ticks more than {MAX_MOMENTS} times in this period: replayed up to {tick:%Y-%m-%d %H:%M}"
            )
    past: list[PastRun] = [r for r in (history or []) if r.created_at < since]
    last_run: datetime | None = max((r.created_at for r in past), default=None)
    window = timedelta(seconds=policy.data.production.window)
    for at, what in sorted(moments):
        labelled = min(
            count_labels(deployment, predicted_since=at - window, predicted_until=at, labelled_until=at),
            policy.data.production.max_rows,
        )
        new = count_labels(deployment, labelled_since=last_run, labelled_until=at)
        why = blocked(policy.guards, sorted(past, key=lambda r: r.created_at, reverse=True), at)
        if why is None and new < policy.triggers.min_new_labels:
            why = f"min_new_labels: {new} labels since the last run, {policy.triggers.min_new_labels} needed"
        held = int(round(labelled * policy.holdout.newest))
        if why is None and held < policy.holdout.min_rows:
            why = f"too few labels: {labelled} labelled rows would hold out {held} (holdout.min_rows {policy.holdout.min_rows})"
        report.triggers.append(SimulatedTrigger(at, what, "suppressed" if why else "run", why, labelled, held, new))
        if why is None:
            past.append(PastRun("promoted", at, at))
            last_run = at
    report.notes.append(
        "a simulated run is taken to end as it starts, and its outcome is unknown: "
        "stop_after_rejections is not replayed"
    )
    if not any(report.windows.values()) and policy.triggers.monitors:
        report.notes.append("no stored windows of the trigger monitors in this period")
    return report
