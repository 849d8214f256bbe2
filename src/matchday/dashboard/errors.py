"""The dashboard's own errors: a page that names nothing we have, or a time range that makes no sense."""

from __future__ import annotations

from matchday.errors import MatchdayError


class DashboardError(MatchdayError):
    """Root of the dashboard's errors."""


class PageNotFound(DashboardError):
    """The page names a deployment, feature, model or rollout action we do not have (a 404)."""


class BadTimeRange(DashboardError):
    """The time range or window width cannot be read, or ends before it starts (a 400)."""


class PageUnavailable(DashboardError):
    """A part the page reads cannot be built now (a retraining policy that does not read): a 503 saying why."""
