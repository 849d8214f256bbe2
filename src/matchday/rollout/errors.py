"""Errors of the rollout part (the HTTP layer maps them: 400, or 409 for `NothingToDo`)."""

from __future__ import annotations

from matchday.errors import MatchdayError


class RolloutError(MatchdayError):
    """Root of the rollout part's errors."""


class InvalidPlan(RolloutError):
    """A rollout plan that cannot run: each problem is in ``details``."""


class NothingToDo(RolloutError):
    """A promote, rollback, pause or resume with no rollout in a state that allows it."""


class IncompatibleCandidate(RolloutError):
    """The candidate cannot answer the baseline's requests (inputs or outputs differ)."""
