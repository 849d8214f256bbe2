"""The time range a page shows: a preset (``1h``, ``7d``) or ``since``/``until`` times, and the window
width that fits it (a day of 5-minute windows, a month of daily ones)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from matchday.dashboard.errors import BadTimeRange
from matchday.durations import parse_duration

PRESETS = {name: parse_duration(name) for name in ("15m", "1h", "6h", "24h", "7d", "30d")}  # name -> seconds
DEFAULT_PRESET = "24h"
LONGEST = timedelta(days=400)


@dataclass(frozen=True)
class TimeRange:
    since: datetime
    until: datetime
    preset: str | None  # None for a custom range

    @property
    def seconds(self) -> float:
        return (self.until - self.since).total_seconds()

    def width(self) -> str:
        """The finest time window that keeps a chart under a few hundred points."""
        if self.seconds <= 86400:
            return "5m"
        if self.seconds <= 14 * 86400:
            return "1h"
        return "1d"


def parse_range(
    preset: str | None = None, since: str | None = None, until: str | None = None, now: datetime | None = None
) -> TimeRange:
    """A range from query parameters; anything unreadable is `BadTimeRange` with what was expected.

    >>> r = parse_range("1h", now=datetime(2026, 11, 27, 12, 0, tzinfo=UTC))
    >>> r.since.isoformat(), r.width()
    ('2026-11-27T11:00:00+00:00', '5m')
    """
    now = now or datetime.now(UTC)
    if since or until:
        if preset:
            raise BadTimeRange("give either a preset range or since/until times, not both")
        end = _time(until, "until") if until else now
        start = _time(since, "since") if since else end - timedelta(seconds=PRESETS[DEFAULT_PRESET])
        if start >= end:
            raise BadTimeRange(f"the range starts ({start.isoformat()}) at or after it ends ({end.isoformat()})")
        if end - start > LONGEST:
            raise BadTimeRange(f"the range is longer than {LONGEST.days} days")
        return TimeRange(start, end, None)
    name = preset or DEFAULT_PRESET
    if name not in PRESETS:
        raise BadTimeRange(f"unknown range {name!r}; one of {', '.join(PRESETS)}, or since/until times")
    return TimeRange(now - timedelta(seconds=PRESETS[name]), now, name)


def _time(text: str, name: str) -> datetime:
    """An ISO 8601 time (the picker's ``2026-11-27T08:00`` included), UTC when it names no zone."""
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise BadTimeRange(f"{name}={text!r} is not a time; write it as ISO 8601, e.g. 2026-11-27T08:00") from exc
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
