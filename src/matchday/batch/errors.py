"""Batch scoring's errors: each says what is wrong with the job's input, output or model, and what to do."""

from __future__ import annotations

from matchday.errors import MatchdayError


class BatchError(MatchdayError):
    """The root of batch scoring's errors."""


class BatchInputError(BatchError):
    """The input cannot be read or does not hold what the model needs (nothing of it was scored)."""


class OutputExists(BatchError):
    """The output folder already holds a job and ``--resume`` was not given."""


class ResumeRefused(BatchError):
    """``--resume`` of a job whose model, options or input changed since it started."""


class RejectRateExceeded(BatchError):
    """Too many rows were rejected: the job stopped (its finished parts are kept; the manifest says why)."""


class ScoringFailed(BatchError):
    """The job stopped on an error that is not one row's fault (the manifest says which part)."""
