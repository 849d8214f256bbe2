"""Who is asking: a user (dashboard login), a token (a machine), or the machine's own administrator
(the CLI on the store, or anyone on loopback while no credential exists)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from matchday.auth.roles import effective
from matchday.auth.route_roles import OPEN, RouteRule


@dataclass(frozen=True)
class Principal:
    """``actor`` is what the audit trail records: ``user:alice``, ``token:<key> (<name>)``, ``local:<who>``."""

    kind: Literal["user", "token", "local"]
    name: str
    roles: frozenset[str]  # every role held, the implied ones included
    deployments: frozenset[str] | None = None  # a token limited to these; None: all
    key: str | None = None  # a token's public key
    session_id: str | None = None
    csrf: str | None = None  # a browser session's CSRF token

    @property
    def actor(self) -> str:
        if self.kind == "token":
            return f"token:{self.key} ({self.name})"
        return f"{self.kind}:{self.name}"

    def may(self, rule: RouteRule, params: dict[str, str]) -> bool:
        """Whether this caller may call a route of ``rule`` with these path parameters."""
        if rule.role == OPEN:
            return True
        if rule.role not in self.roles:
            return False
        if rule.deployment is not None and self.deployments is not None and "admin" not in self.roles:
            return params.get(rule.deployment) in self.deployments
        return True


def local_admin(who: str) -> Principal:
    """The machine's own administrator: CLI commands on the store, loopback callers before any credential."""
    return Principal("local", who, effective(["admin"]))
