"""The dashboard: server-rendered pages over deployments, rollouts, windows, models and alerts, with
charts drawn by a bundled uPlot; served by the same app at ``/``, reading through the other parts."""

from matchday.dashboard.errors import BadTimeRange, DashboardError, PageNotFound
from matchday.dashboard.pages import DashboardPages
from matchday.dashboard.routes import dashboard_router, mount_dashboard
from matchday.dashboard.timerange import TimeRange, parse_range

__all__ = [
    "BadTimeRange",
    "DashboardError",
    "DashboardPages",
    "PageNotFound",
    "TimeRange",
    "dashboard_router",
    "mount_dashboard",
    "parse_range",
]
