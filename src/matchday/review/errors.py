"""Errors of the review part (the HTTP layer maps them: 400, 409 for `ReviewConflict`)."""

from __future__ import annotations

from matchday.errors import MatchdayError


class ReviewError(MatchdayError):
    """Root of the review part's errors: a policy, rule or decision that cannot be used as given."""


class InvalidPolicy(ReviewError):
    """An automation policy (level, rule, deadline, rates) that cannot run; each problem in ``details``."""


class InvalidRule(InvalidPolicy):
    """A review rule that does not parse, or names something a row does not have."""
