"""The five roles and what each one carries with it: a role names a job, and a job needs to see.

``admin`` holds every role; ``operator`` also reads and predicts (to check what it deploys);
``reviewer`` also reads; ``viewer`` only reads; ``predictor`` only predicts and sends feedback, so a
client's token cannot read other deployments' logs or metrics.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

Role = Literal["viewer", "predictor", "reviewer", "operator", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
_IMPLIES: dict[str, frozenset[str]] = {
    "viewer": frozenset({"viewer"}),
    "predictor": frozenset({"predictor"}),
    "reviewer": frozenset({"reviewer", "viewer"}),
    "operator": frozenset({"operator", "viewer", "predictor"}),
    "admin": frozenset(ROLES),
}


class UnknownRole(ValueError):
    pass


def parse_roles(names: Iterable[str]) -> tuple[Role, ...]:
    """Role names checked and de-duplicated, in the order of `ROLES`; at least one.

    >>> parse_roles(["operator", "viewer", "operator"])
    ('viewer', 'operator')
    """
    given = {n.strip().lower() for n in names if n.strip()}
    unknown = sorted(given - set(ROLES))
    if unknown:
        raise UnknownRole(f"unknown role(s) {', '.join(unknown)}; the roles are {', '.join(ROLES)}")
    if not given:
        raise UnknownRole(f"give at least one role: {', '.join(ROLES)}")
    return tuple(r for r in ROLES if r in given)


def effective(roles: Iterable[str]) -> frozenset[str]:
    """Every role these roles hold, the implied ones included.

    >>> sorted(effective(["reviewer"]))
    ['reviewer', 'viewer']
    """
    out: set[str] = set()
    for role in roles:
        out |= _IMPLIES.get(role, frozenset())
    return frozenset(out)
