"""Errors of the auth part: who is asking is unknown (401), may not (403), or tries too often (429)."""

from __future__ import annotations

from matchday.errors import MatchdayError


class AuthError(MatchdayError):
    """Root of the auth part's errors."""


class Unauthenticated(AuthError):
    """No credential, or one that is unknown, expired or revoked."""


class Forbidden(AuthError):
    """A known caller without the role (or the deployment) the route needs."""


class TooManyAttempts(AuthError):
    """Too many failed logins from this address or for this user; ``retry_after`` in seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidPrincipal(AuthError):
    """A user or token that cannot be made as asked (a bad name, role, password or duration)."""
