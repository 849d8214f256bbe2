"""A series that fails is counted and passed over, never the end of monitoring for the others.

The summarizer and the loop do their work per series (a deployment version): one window that cannot
be summarised, merged or judged once stopped every deployment's monitoring, at every tick, across
restarts. Each such piece of work now runs under `Failures.guard`: an error is logged with the series
named, counted in the monitoring state (``FAILURES_KEY``: a count per series with the last error and
its time, which `matchday_monitoring_failures_total` reports), and the tick goes on with the rest.
The store's errors are not the series' fault: they propagate, so the tick fails whole and is retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from matchday.monitoring.windows.series import SeriesKey, join_key
from matchday.store import MonitorStateStore, StoreError

log = logging.getLogger("matchday.monitoring")
FAILURES_KEY = join_key("monitoring", "failures")  # the monitor state's key of the counts
MAX_SERIES = 1000  # series whose failures are remembered
Series = tuple[str, str, int]  # deployment, model, version: a `SeriesKey`, or a window key's first three


@dataclass(frozen=True)
class SeriesFailure:
    """One failure in one tick: the series, what was being done (``stage``) to what (``where``: a
    window or a monitor), and the error."""

    deployment: str
    model: str
    version: int
    stage: str
    where: str
    error: str


@dataclass(frozen=True)
class FailureCount:
    """A series' failures since monitoring began (kept in the database, so across restarts)."""

    deployment: str
    model: str
    version: int
    count: int
    last_stage: str
    last_error: str
    last_at: datetime

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> FailureCount:
        return cls(
            value["deployment"],
            value["model"],
            int(value["version"]),
            int(value["count"]),
            value["last_stage"],
            value["last_error"],
            datetime.fromisoformat(value["last_at"]),
        )


class Failures:
    """This tick's failures, added to the counts stored before it (read from ``load`` at the first
    failure only: a tick without one costs no query)."""

    def __init__(self, load: Callable[[], dict[str, Any] | None], now: datetime) -> None:
        self.load = load
        self.now = now
        self.new: list[SeriesFailure] = []
        self._counts: dict[str, dict[str, Any]] | None = None

    @contextmanager
    def guard(self, series: Series, stage: str, where: str = "") -> Iterator[None]:
        """Run the block for ``series``; anything but a store error is logged, counted and swallowed."""
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:
            self.record(series, stage, where, exc)

    def record(self, series: Series, stage: str, where: str, exc: BaseException) -> None:
        deployment, model, version = series
        error = f"{type(exc).__name__}: {exc}"
        self.new.append(SeriesFailure(deployment, model, version, stage, where, error))
        key = SeriesKey(deployment, model, version).to_text()
        if self._counts is None:
            self._counts = {k: dict(v) for k, v in (self.load() or {}).items()}
        counts = self._counts  # a local, so the sort key's lambda sees it is not None
        mine = counts.setdefault(key, {"deployment": deployment, "model": model, "version": version, "count": 0})
        mine.update(count=mine["count"] + 1, last_stage=stage, last_error=error[:500], last_at=self.now.isoformat())
        if len(counts) > MAX_SERIES:  # bounded: the series that failed longest ago go first
            for stale in sorted(counts, key=lambda k: counts[k]["last_at"])[: len(counts) - MAX_SERIES]:
                del counts[stale]
        first = mine["count"] == 1  # the traceback once per series; a series that keeps failing, one line a tick
        log.error(
            "monitoring %s of %s (%s:%s)%s failed, passed over (failure %d of this series): %s",
            stage,
            deployment,
            model,
            version,
            f" {where}" if where else "",
            mine["count"],
            error,
            exc_info=(type(exc), exc, exc.__traceback__) if first else None,
        )

    def to_state(self) -> dict[str, dict[str, Any]]:
        """``{FAILURES_KEY: counts}`` to store with the tick's other state, or nothing if none failed."""
        return {FAILURES_KEY: self._counts} if self._counts is not None else {}


def failure_counts(state: MonitorStateStore) -> list[FailureCount]:
    """The counts kept in the monitoring state, one per series that ever failed (for /metrics, the CLI)."""
    return [FailureCount.from_json(v) for _, v in sorted((state.get(FAILURES_KEY) or {}).items())]
