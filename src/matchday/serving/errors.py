"""Errors of the serving part, and the one table that maps every domain error to an HTTP status."""

from __future__ import annotations

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


def status_for(exc: MatchdayError) -> int:
    """The HTTP status of a domain error: 4xx for the caller's mistakes, 5xx only for ours."""
    from matchday.edge import DeviceNotBound, InvalidTelemetry, TelemetryError, TooMuchTelemetry, WrongDeployment
    from matchday.registry import ArtifactError, InvalidInput, InvalidModelRef, RegistryError
    from matchday.retrain import InvalidPolicy, NoPolicy, RetrainConflict, RetrainError
    from matchday.review import ReviewError
    from matchday.rollout import NothingToDo, RolloutError
    from matchday.store import Conflict, NotFound, StoreUnavailable

    table: list[tuple[type[MatchdayError], int]] = [
        (ModelStuck, 503),
        (ModelTimeout, 504),
        (BodyTimeout, 408),
        (TooManyRequests, 429),
        (ModelLoadFailed, 500),
        (ModelFailed, 500),
        (PayloadTooLarge, 413),
        (TooMuchTelemetry, 413),
        (InvalidTelemetry, 422),
        (DeviceNotBound, 403),
        (WrongDeployment, 409),
        (VersionNotServed, 404),
        (InvalidRequest, 422),
        (InvalidInput, 422),
        (BadRequest, 400),
        (InvalidModelRef, 400),
        (NotFound, 404),
        (NoPolicy, 404),
        (StoreUnavailable, 503),
        (Conflict, 409),
        (NothingToDo, 409),
        (RetrainConflict, 409),
        (InvalidPolicy, 400),
        (RetrainError, 400),
        (ArtifactError, 500),
        (RolloutError, 400),
        (RegistryError, 400),
        (ReviewError, 400),
        (TelemetryError, 400),
    ]
    for kind, status in table:
        if isinstance(exc, kind):
            return status
    return 500


def headers_for(exc: BaseException) -> dict[str, str] | None:
    """The headers an error's answer carries besides its body: when to retry, or that the connection ends."""
    if isinstance(exc, TooManyRequests):
        return {"retry-after": str(exc.retry_after)}
    if isinstance(exc, BodyTimeout):  # the rest of the body may still come: no next request on this connection
        return {"connection": "close"}
    return None
