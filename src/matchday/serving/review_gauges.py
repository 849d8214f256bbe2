"""Prometheus figures of the review queue, read from the database at scrape time (every replica
reports the same): items by status (the queue's depth is open + escalated) and settled items by
outcome (the override rate is overridden over approved + overridden; set once per item, so they
only grow), and the held answers whose deadline passed before a person decided them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("matchday.serving")
Tally = list[tuple[str, str, str | None, int, int]]  # (deployment, status, outcome, items, missed deadlines)


class ReviewGauges(Collector):
    def __init__(self, tally: Callable[[], Tally]) -> None:
        self.tally = tally

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        items = GaugeMetricFamily(
            "matchday_review_items",
            "Review items by status (open + escalated: the queue)",
            labels=["deployment", "status"],
        )
        outcomes = CounterMetricFamily(
            "matchday_review_outcomes",
            "Settled review items by outcome: approved, overridden, deadline_approved, deadline_rejected",
            labels=["deployment", "outcome"],
        )
        misses = CounterMetricFamily(
            "matchday_review_deadline_misses",
            "Held answers whose review deadline passed before a person decided them",
            labels=["deployment"],
        )
        try:
            rows = self.tally()
        except Exception as exc:  # the database is away: /metrics still answers with the serving metrics
            log.warning("review gauges not available: %s", exc)
            return
        by_status: dict[tuple[str, str], int] = {}
        by_outcome: dict[tuple[str, str], int] = {}
        missed: dict[str, int] = {}
        for deployment, status, outcome, n, m in rows:
            missed[deployment] = missed.get(deployment, 0) + m
            by_status[(deployment, status)] = by_status.get((deployment, status), 0) + n
            if outcome:
                by_outcome[(deployment, outcome)] = by_outcome.get((deployment, outcome), 0) + n
        for key, n in sorted(by_status.items()):
            items.add_metric(list(key), n)
        for key, n in sorted(by_outcome.items()):
            outcomes.add_metric(list(key), n)
        for deployment, m in sorted(missed.items()):
            misses.add_metric([deployment], m)
        yield items
        yield outcomes
        yield misses
