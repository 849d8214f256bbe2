"""Errors of the serving part, and the one table that maps every domain error to an HTTP status (`status_for`),
for the API and the dashboard alike."""

from __future__ import annotations

from functools import cache
from typing import Any

from matchday.errors import MatchdayError


class ServingError(MatchdayError):
    """Root of the serving part's errors."""


class BadRequest(ServingError):
    """The body is not what the endpoint reads (not JSON, wrong shape)."""


class InvalidRequest(ServingError):
    """The body parsed but its values do not fit the model's signature; ``details`` has each field."""

    def __init__(self, message: str, problems: list[dict[str, Any]]) -> None:
        super().__init__(message, [f"{p['field']}: {p['problem']}" for p in problems])
        self.problems = problems


class InputOutOfRange(InvalidRequest):
    """The version could not score values far outside its reference range (it raised, or answered
    NaN or infinity for them): the caller's input, not the version's failure."""


class InvalidLabels(InvalidRequest):
    """Feedback labels that the deployed version could never have predicted (a class it does not
    have, a regressor's label that is not a finite number); ``problems`` has each one's position,
    value and what was expected."""


class PayloadTooLarge(ServingError):
    """The body or the number of rows is over the deployment's limit."""


class ModelLoadFailed(ServingError):
    """A deployed version's artifact does not load on this server (a missing module, a bad file)."""


class ModelFailed(ServingError):
    """The model raised (or answered the wrong number of rows) while scoring a request."""


class BodyTimeout(ServingError):
    """The client stopped sending its body: one wait for the next chunk took longer than ``body_timeout``.
    A 408 that closes the connection, so a stalled client holds nothing for longer than that."""


class TooManyRequests(ServingError):
    """The deployment already has ``max_in_flight`` requests in progress in this process: refused at once
    (429 with ``Retry-After``) rather than queued behind them."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelTimeout(ServingError):
    """A model call took longer than ``model_timeout``: the requests of its micro-batch answer 504."""


class ModelStuck(ModelTimeout):
    """The version was not called: earlier calls that timed out are still running on their threads (a
    Python thread cannot be stopped), as many as it may have. A 503 until one of them returns."""


class VersionNotServed(ServingError):
    """A V2 request named a model version the deployment is not serving."""


class PortUnavailable(ServingError):
    """`matchday serve` cannot listen on the host and port it was given (taken, privileged, not ours)."""


class Unavailable(ServingError):
    """A part the request needs cannot work now (a policy in matchday.yaml that does not read): a 503 saying why."""


def status_for(exc: MatchdayError) -> int:
    """The HTTP status of a domain error: 4xx for the caller's mistakes, 5xx only for ours. The API's JSON
    errors and the dashboard's error pages both answer with it."""
    status = status_of(type(exc))
    return 500 if status is None else status


def status_of(kind: type[MatchdayError]) -> int | None:
    """The status of the table's first row that ``kind`` is a kind of; None when no row names it (a bug: 500)."""
    return next((status for row, status in _table() if issubclass(kind, row)), None)


@cache
def _table() -> tuple[tuple[type[MatchdayError], int], ...]:
    """The one table from domain errors to HTTP statuses, most specific first: every error a part's face
    names has a row (or a parent's), a test holds it. Its imports wait for the first error: the parts import
    this module's errors."""
    from matchday.auth import AuthError, Forbidden, InvalidPrincipal, TooManyAttempts, Unauthenticated
    from matchday.batch import (
        BatchError,
        BatchInputError,
        OutputExists,
        RejectRateExceeded,
        ResumeRefused,
        ScoringFailed,
    )
    from matchday.edge import (
        DeviceNotBound,
        EdgeError,
        ExportError,
        InvalidTelemetry,
        SigningKeyError,
        TelemetryError,
        TooMuchTelemetry,
        WrongDeployment,
    )
    from matchday.monitoring import DetectorError, DriftError, InvalidMonitor, InvalidWebhook, UnknownWindow
    from matchday.registry import ArtifactError, InvalidInput, InvalidModelRef, RegistryError
    from matchday.retrain import InvalidPolicy, NoPolicy, RetrainConflict, RetrainError
    from matchday.review import ReviewError
    from matchday.rollout import NothingToDo, RolloutError
    from matchday.store import Conflict, NotFound, StoreError, StoreUnavailable

    return (
        (ModelStuck, 503),
        (ModelTimeout, 504),
        (BodyTimeout, 408),
        (TooManyRequests, 429),
        (ModelLoadFailed, 500),
        (ModelFailed, 500),
        (PortUnavailable, 500),
        (PayloadTooLarge, 413),
        (TooMuchTelemetry, 413),
        (InvalidTelemetry, 422),
        (DeviceNotBound, 403),
        (WrongDeployment, 409),
        (VersionNotServed, 404),
        (InvalidRequest, 422),
        (InvalidInput, 422),
        (BadRequest, 400),
        (Unavailable, 503),
        (InvalidModelRef, 400),
        (NotFound, 404),
        (NoPolicy, 404),
        (StoreUnavailable, 503),
        (Conflict, 409),
        (StoreError, 500),
        (NothingToDo, 409),
        (RetrainConflict, 409),
        (InvalidPolicy, 400),
        (RetrainError, 400),
        (ArtifactError, 500),
        (RolloutError, 400),
        (RegistryError, 400),
        (ReviewError, 400),
        (TelemetryError, 400),
        (SigningKeyError, 500),
        (ExportError, 400),
        (EdgeError, 400),
        (Unauthenticated, 401),
        (Forbidden, 403),
        (TooManyAttempts, 429),
        (InvalidPrincipal, 400),
        (AuthError, 400),
        (UnknownWindow, 400),
        (InvalidMonitor, 400),
        (InvalidWebhook, 400),
        (DetectorError, 400),
        (DriftError, 400),
        (ScoringFailed, 500),
        (OutputExists, 409),
        (ResumeRefused, 409),
        (RejectRateExceeded, 422),
        (BatchInputError, 400),
        (BatchError, 400),
        (ServingError, 500),  # last: the dashboard's errors are kinds of it, and of the rows above first
    )


def headers_for(exc: BaseException) -> dict[str, str] | None:
    """The headers an error's answer carries besides its body: when to retry, or that the connection ends."""
    from matchday.auth import TooManyAttempts

    if isinstance(exc, TooManyRequests | TooManyAttempts):
        return {"retry-after": str(exc.retry_after)}
    if isinstance(exc, BodyTimeout):  # the rest of the body may still come: no next request on this connection
        return {"connection": "close"}
    return None
