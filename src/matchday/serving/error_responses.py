"""The error answers each operation can give, declared in the OpenAPI document so that a client (and
the fuzzer's check) knows every status it may see: the door's (401, 403, 415), the body reader's
(400, 408, 413), the domain's per kind of route, and 503 while the database is away."""

from __future__ import annotations

from typing import Any

from matchday.auth import OPEN, RouteTable

_ERROR = {
    "description": "an error: {error, details} on /v1, {error} on /v2",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}, "details": {"type": "array"}},
            }
        }
    },
}
_WHY = {
    "400": "the body is not what the route reads (not JSON, wrong shape)",
    "401": "no credential, or an unknown, expired or revoked one",
    "403": "the caller lacks the role or the deployment; or a browser's request from another site",
    "404": "no such deployment, model, version, rollout or retraining run; or no retraining policy",
    "408": "the body stalled past the body timeout",
    "409": "the state does not allow it (no rollout in progress, already serving that version, a retraining "
    "run already in progress or not awaiting approval)",
    "413": "the body or its rows are over the limit",
    "415": "a body type another site's page could send unasked",
    "422": "values that do not fit the signature, or labels the model could never predict",
    "429": "too many requests in flight for this deployment (Retry-After says when to try again)",
    "500": "the model failed to score these rows",
    "503": "the database is away, or the version's model calls are stuck",
    "504": "the model call took longer than the model timeout",
}
_SCORING = ("/predict", "/infer")


def statuses_of(method: str, path: str, has_body: bool, table: RouteTable | None = None) -> set[str]:
    """The error statuses an operation can answer.

    >>> sorted(statuses_of("GET", "/v1/alerts", False))
    ['401', '403', '422', '503']
    """
    rule = (table or RouteTable()).rule_for(method, path)
    out = {"503"}
    if rule is None or rule.role != OPEN:
        out |= {"401", "403"}
    if method in ("POST", "PUT", "PATCH"):
        out |= {"400", "408", "413", "415", "422"}
    else:
        out.add("422")  # a query parameter of the wrong type
    if "{name}" in path:
        out.add("404")
    if path.endswith(_SCORING):
        out |= {"429", "500", "504"}
    if "/rollout" in path or path.startswith("/v1/models") or method == "PUT":
        out |= {"400", "409"}
    if "/versions/{version}" in path:
        out.add("404")
    if path.startswith("/v1/review") or "/automation" in path or "/decisions/" in path:
        out |= {"400", "404", "409"}  # no such item or answer; a decision on an item settled or claimed by another
    if "/retrain" in path:
        out |= {"400", "404", "409"}  # a bad ?since=; no such run or policy; a run in progress, not awaiting approval
    return out


def declare_error_responses(schema: dict[str, Any]) -> None:
    """Add each operation's error answers to an OpenAPI document (in place)."""
    table = RouteTable()
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            has_body = "requestBody" in operation
            responses = operation["responses"]
            for status in sorted(statuses_of(method.upper(), path, has_body, table)):
                responses.setdefault(status, {**_ERROR, "description": _WHY[status]})
