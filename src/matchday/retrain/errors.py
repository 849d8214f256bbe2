"""Errors of the retraining part (the HTTP layer maps them: 400, 404, 409)."""

from __future__ import annotations

from matchday.errors import MatchdayError


class RetrainError(MatchdayError):
    """Root of the retraining part's errors."""


class InvalidPolicy(RetrainError, ValueError):
    """A retraining policy that cannot run; each problem in ``details``."""


class NoPolicy(RetrainError):
    """The deployment has no retraining policy in matchday.yaml."""


class TrainerFailed(RetrainError):
    """The user's trainer raised, returned nothing usable, or ran past its timeout: the run fails, no retry."""


class NotEnoughData(RetrainError):
    """Too few labelled rows to train on or to hold out: the run fails saying how many it had."""


class RetrainConflict(RetrainError):
    """The run is not in a state that allows the action (approve a run that is training, cancel a finished one)."""
