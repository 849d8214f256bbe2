"""The one table from domain errors to HTTP statuses (`matchday.serving.status_for`), which the API's JSON
errors and the dashboard's error pages both answer with: every error a part's face names has a row of
its own or a parent's, and no status it gave before changed."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator

import pytest

from matchday.errors import MatchdayError
from matchday.serving.errors import status_for, status_of

FACES = [
    "matchday",
    "matchday.store",
    "matchday.registry",
    "matchday.monitoring",
    "matchday.rollout",
    "matchday.auth",
    "matchday.review",
    "matchday.retrain",
    "matchday.batch",
    "matchday.edge",
    "matchday.serving",
    "matchday.dashboard",
]


def _subclasses(kind: type[MatchdayError]) -> Iterator[type[MatchdayError]]:
    for sub in kind.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def reachable_errors() -> list[type[MatchdayError]]:
    """Every error class a part's face names, and every class of ours derived from one of them."""
    named = set()
    for face in FACES:
        module = importlib.import_module(face)
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isclass(value) and issubclass(value, MatchdayError) and value is not MatchdayError:
                named.add(value)
    found = named | {sub for kind in named for sub in _subclasses(kind) if sub.__module__.startswith("matchday.")}
    return sorted(found, key=lambda kind: f"{kind.__module__}.{kind.__qualname__}")


@pytest.mark.parametrize("kind", reachable_errors(), ids=lambda kind: kind.__qualname__)
def test_every_error_a_face_names_has_a_deliberate_status(kind: type[MatchdayError]) -> None:
    assert status_of(kind) is not None, f"{kind.__module__}.{kind.__qualname__} falls through to a 500"


def test_the_statuses_the_table_gave_before_it_was_one_are_unchanged() -> None:
    from matchday.edge import DeviceNotBound, InvalidTelemetry, TelemetryError, TooMuchTelemetry, WrongDeployment
    from matchday.registry import ArtifactError, InvalidInput, InvalidModelRef, RegistryError
    from matchday.retrain import InvalidPolicy, NoPolicy, RetrainConflict, RetrainError
    from matchday.review import ReviewError
    from matchday.rollout import NothingToDo, RolloutError
    from matchday.serving import errors as serving
    from matchday.store import Conflict, NotFound, StoreUnavailable

    before = {
        serving.ModelStuck: 503,
        serving.ModelTimeout: 504,
        serving.BodyTimeout: 408,
        serving.TooManyRequests: 429,
        serving.ModelLoadFailed: 500,
        serving.ModelFailed: 500,
        serving.PayloadTooLarge: 413,
        TooMuchTelemetry: 413,
        InvalidTelemetry: 422,
        DeviceNotBound: 403,
        WrongDeployment: 409,
        serving.VersionNotServed: 404,
        serving.InvalidRequest: 422,
        InvalidInput: 422,
        serving.BadRequest: 400,
        InvalidModelRef: 400,
        NotFound: 404,
        NoPolicy: 404,
        StoreUnavailable: 503,
        Conflict: 409,
        NothingToDo: 409,
        RetrainConflict: 409,
        InvalidPolicy: 400,
        RetrainError: 400,
        ArtifactError: 500,
        RolloutError: 400,
        RegistryError: 400,
        ReviewError: 400,
        TelemetryError: 400,
    }
    assert {kind: status_of(kind) for kind in before} == before


def test_the_dashboards_errors_answer_as_their_pages_did() -> None:
    from matchday.dashboard import BadTimeRange, PageNotFound
    from matchday.dashboard.errors import PageUnavailable

    assert status_for(PageNotFound("no deployment 'x'")) == 404
    assert status_for(BadTimeRange("unknown range")) == 400
    assert status_for(PageUnavailable("the policy does not read")) == 503


def test_the_doors_errors_have_their_statuses_and_a_retry_after() -> None:
    from matchday.auth import Forbidden, TooManyAttempts, Unauthenticated
    from matchday.serving import headers_for

    assert (status_for(Unauthenticated("who?")), status_for(Forbidden("no"))) == (401, 403)
    tried = TooManyAttempts("wait", retry_after=30)
    assert status_for(tried) == 429 and headers_for(tried) == {"retry-after": "30"}


def test_an_error_no_row_names_is_ours_a_500() -> None:
    class Unforeseen(MatchdayError):
        pass

    assert status_of(Unforeseen) is None and status_for(Unforeseen("a bug")) == 500
