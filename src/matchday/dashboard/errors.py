"""The dashboard's own errors: a page that names nothing we have, or a time range that makes no sense.

Each is a kind of the error whose status it answers with, so the one table (`matchday.serving.status_for`)
gives the dashboard's error pages the statuses the API gives its JSON errors.
"""

from __future__ import annotations

from matchday.serving import BadRequest, ServingError, Unavailable
from matchday.store import NotFound


class DashboardError(ServingError):
    """Root of the dashboard's errors: a web face's, like the API's (a 500 unless a kind says otherwise)."""


class PageNotFound(DashboardError, NotFound):
    """The page names a deployment, feature, model or rollout action we do not have (a 404)."""


class BadTimeRange(DashboardError, BadRequest):
    """The time range or window width cannot be read, or ends before it starts (a 400)."""


class PageUnavailable(DashboardError, Unavailable):
    """A part the page reads cannot be built now (a retraining policy that does not read): a 503 saying why."""
