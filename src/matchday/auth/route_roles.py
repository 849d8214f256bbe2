"""Which role may call which route: one table for the whole app (API and dashboard).

A route missing here is refused to everyone but an admin, and a test fails on it, so a new route
cannot ship without a decision. ``OPEN`` routes need no caller at all (health checks for load
balancers, the login page and its styles). Routes scoped by deployment name a path parameter: a
token limited to some deployments may call them for those only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPEN = "open"


@dataclass(frozen=True)
class RouteRule:
    """``role``: the role a caller needs (or `OPEN`); ``deployment``: the path parameter naming the
    deployment the call acts on, for tokens limited to some."""

    method: str
    template: str
    role: str
    deployment: str | None = None
    upload: bool = False  # the body is multipart/form-data (a file upload), not JSON


_TABLE: tuple[tuple[str, str, str], ...] = (
    # the V1 API: predictions and feedback
    ("POST", "/v1/deployments/{name}/predict", "predictor"),
    ("POST", "/v1/deployments/{name}/feedback", "predictor"),
    ("GET", "/v1/deployments", "viewer"),
    # rollouts
    ("POST", "/v1/deployments/{name}/rollout", "operator"),
    ("GET", "/v1/deployments/{name}/rollout", "viewer"),
    ("POST", "/v1/deployments/{name}/rollout/{action}", "operator"),
    ("GET", "/v1/deployments/{name}/events", "viewer"),
    # the registry and deployments: a training job on another machine registers, aliases, deploys
    ("GET", "/v1/models", "viewer"),
    ("GET", "/v1/models/{name}", "viewer"),
    ("GET", "/v1/models/{name}/versions/{version}", "viewer"),
    ("POST", "/v1/models/{name}/versions", "operator"),  # an upload; trust_pickle=true needs admin (the route says)
    ("PUT", "/v1/models/{name}/aliases/{alias}", "operator"),
    ("PUT", "/v1/deployments/{name}", "operator"),
    # people in the loop: a client reads its held answers' decisions; reviewers work the queue
    ("GET", "/v1/deployments/{name}/decisions/{request_id}", "predictor"),
    ("GET", "/v1/deployments/{name}/automation", "viewer"),
    ("PUT", "/v1/deployments/{name}/automation", "operator"),
    ("GET", "/v1/deployments/{name}/automation/suggest", "viewer"),
    ("GET", "/v1/deployments/{name}/review/stats", "viewer"),
    ("GET", "/v1/review/items", "reviewer"),
    ("POST", "/v1/review/next", "reviewer"),
    ("GET", "/v1/review/items/{review_id}", "reviewer"),
    ("POST", "/v1/review/items/{review_id}/decide", "reviewer"),
    ("POST", "/v1/review/items/{review_id}/release", "reviewer"),
    # retraining: reading its runs and policies is a viewer's, acting on them an operator's (as rollouts)
    ("GET", "/v1/retrain/runs", "viewer"),
    ("GET", "/v1/retrain/runs/{run_id}", "viewer"),
    ("POST", "/v1/deployments/{name}/retrain", "operator"),
    ("POST", "/v1/retrain/runs/{run_id}/approve", "operator"),
    ("POST", "/v1/retrain/runs/{run_id}/cancel", "operator"),
    ("GET", "/v1/deployments/{name}/retrain/policy", "viewer"),
    ("GET", "/v1/deployments/{name}/retrain/simulate", "viewer"),
    # edge devices: a device's own token sends its telemetry (the route checks the binding)
    ("POST", "/v1/edge/devices/{device}/telemetry", "predictor"),
    ("GET", "/v1/edge/devices", "viewer"),
    # monitoring
    ("GET", "/v1/deployments/{name}/metrics", "viewer"),
    ("GET", "/v1/monitors", "viewer"),
    ("GET", "/v1/alerts", "viewer"),
    ("GET", "/metrics", OPEN),  # Prometheus scrapes without credentials unless `open_metrics` is off
    ("GET", "/healthz", OPEN),
    # Open Inference Protocol V2
    ("GET", "/v2", "predictor"),
    ("GET", "/v2/health/live", OPEN),
    ("GET", "/v2/health/ready", OPEN),
    ("GET", "/v2/models/{name}", "predictor"),
    ("GET", "/v2/models/{name}/versions/{version}", "predictor"),
    ("GET", "/v2/models/{name}/ready", "predictor"),
    ("GET", "/v2/models/{name}/versions/{version}/ready", "predictor"),
    ("POST", "/v2/models/{name}/infer", "predictor"),
    ("POST", "/v2/models/{name}/versions/{version}/infer", "predictor"),
    # the API's own documents
    ("GET", "/openapi.json", "viewer"),
    ("GET", "/docs", "viewer"),
    ("GET", "/docs/oauth2-redirect", "viewer"),
    ("GET", "/redoc", "viewer"),
    ("GET", "/static/docs/{path:path}", "viewer"),
    # the dashboard
    ("GET", "/static/dashboard/{path:path}", OPEN),  # scripts and styles, also of the login page
    ("GET", "/login", OPEN),
    ("POST", "/login", OPEN),
    ("POST", "/logout", OPEN),  # a live session needs its CSRF token; a page whose session ended still leaves
    ("GET", "/", "viewer"),
    ("GET", "/deployments/{name}", "viewer"),
    ("GET", "/deployments/{name}/drift/{feature:path}", "viewer"),
    ("GET", "/deployments/{name}/rollout", "viewer"),
    ("GET", "/deployments/{name}/rollout/{action}", "operator"),
    ("POST", "/deployments/{name}/rollout/{action}", "operator"),
    ("GET", "/models", "viewer"),
    ("GET", "/models/{name}", "viewer"),
    ("GET", "/alerts", "viewer"),
    ("GET", "/review", "reviewer"),
    ("GET", "/review/{name}", "reviewer"),  # claims the next item for the reviewer
    ("POST", "/review/{name}/{review_id}/decide", "reviewer"),
    ("GET", "/edge/devices", "viewer"),
    ("GET", "/retrain", "viewer"),
    ("GET", "/retrain/{run_id}", "viewer"),
    ("POST", "/retrain/{run_id}/{action}", "operator"),  # approve or cancel a run, as a rollout action
)
_PREDICTOR_SCOPED = (
    "/v1/deployments/{name}/predict",
    "/v1/deployments/{name}/feedback",
    "/v1/deployments/{name}/decisions/",
    "/v2/",
)
_UPLOADS = frozenset({("POST", "/v1/models/{name}/versions")})


def _rule(method: str, template: str, role: str) -> RouteRule:
    scoped = role == "predictor" and "{name}" in template and template.startswith(_PREDICTOR_SCOPED)
    return RouteRule(method, template, role, "name" if scoped else None, (method, template) in _UPLOADS)


RULES: tuple[RouteRule, ...] = tuple(_rule(*row) for row in _TABLE)


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    out = []
    for part in parts:
        if part.startswith("{"):
            name, _, kind = part[1:-1].partition(":")
            out.append(f"(?P<{name}>.*)" if kind == "path" else f"(?P<{name}>[^/]+)")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


class RouteTable:
    """`RULES` compiled: the rule of a request's method and path, and its path parameters."""

    def __init__(self, rules: tuple[RouteRule, ...] = RULES) -> None:
        self.rules = rules
        self._exact = {(r.method, r.template): r for r in rules if "{" not in r.template}
        self._patterns = [(r, _pattern(r.template)) for r in rules if "{" in r.template]

    def match(self, method: str, path: str) -> tuple[RouteRule, dict[str, str]] | None:
        """HEAD is read as GET (Starlette answers HEAD for every GET route).

        >>> rule, params = RouteTable().match("POST", "/v1/deployments/fraud/predict")
        >>> (rule.role, rule.deployment, params)
        ('predictor', 'name', {'name': 'fraud'})
        >>> RouteTable().match("DELETE", "/v1/deployments") is None
        True
        """
        method = "GET" if method == "HEAD" else method
        exact = self._exact.get((method, path))
        if exact is not None:
            return exact, {}
        for rule, pattern in self._patterns:
            if rule.method == method:
                found = pattern.fullmatch(path)
                if found is not None:
                    return rule, found.groupdict()
        return None

    def rule_for(self, method: str, template: str) -> RouteRule | None:
        """The rule declared for a route template (what the test of the table reads)."""
        method = "GET" if method == "HEAD" else method
        return next((r for r in self.rules if r.method == method and r.template == template), None)
