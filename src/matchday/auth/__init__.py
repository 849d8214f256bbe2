"""Who may do what: users (dashboard login) and API tokens, the five roles, the table of which role
may call which route, sessions and their CSRF tokens. Other parts import only this face."""

from matchday.auth.access import SESSION_HOURS, Access, AuthMode, parse_expiry
from matchday.auth.credentials import TOKEN_PREFIX
from matchday.auth.errors import AuthError, Forbidden, InvalidPrincipal, TooManyAttempts, Unauthenticated
from matchday.auth.principal import Principal, local_admin
from matchday.auth.roles import ROLES, Role
from matchday.auth.route_roles import OPEN, RULES, RouteRule, RouteTable

__all__ = [
    "OPEN",
    "ROLES",
    "RULES",
    "SESSION_HOURS",
    "TOKEN_PREFIX",
    "Access",
    "AuthError",
    "AuthMode",
    "Forbidden",
    "InvalidPrincipal",
    "Principal",
    "Role",
    "RouteRule",
    "RouteTable",
    "TooManyAttempts",
    "Unauthenticated",
    "local_admin",
    "parse_expiry",
]
