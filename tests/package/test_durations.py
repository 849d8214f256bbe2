"""The one duration parser (`matchday.durations`): every form any part's own parser read before it
(rollout plans, review policies, retraining policies, monitor cooldowns, token expiries), the union of
them at every site, and what no site ever read."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from matchday.auth import InvalidPrincipal, parse_expiry
from matchday.durations import (
    FORMS,
    UNIT_SECONDS,
    OptionalSeconds,
    PositiveSeconds,
    Seconds,
    parse_duration,
)
from matchday.monitoring import MonitorSpec
from matchday.retrain import RetrainPolicy
from matchday.review import AutomationPolicy, InvalidPolicy, policy_of, window_start
from matchday.rollout import build_plan

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        # the rollout plan's forms
        (90, 90.0),
        (0, 0.0),
        (2.5, 2.5),
        ("90", 90.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1.5h", 5400.0),
        ("2d", 172_800.0),
        ("250ms", 0.25),
        (" 10 s ", 10.0),
        ("0s", 0.0),
        # the review policy's (``90m``, ``4h``) and the monitors' cooldowns (``30m``)
        ("90m", 5400.0),
        ("4h", 14_400.0),
        # the token expiry's: weeks, and any case
        ("2w", 14 * 86400.0),
        ("12H", 43_200.0),
        ("90D", 90 * 86400.0),
        # a number numpy made (read as its text, as the rollout parser did)
        (np.int64(7), 7.0),
        (np.float64(0.5), 0.5),
    ],
)
def test_every_form_any_part_read_before(value: Any, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)
    assert type(parse_duration(value)) is float


@pytest.mark.parametrize(
    "value",
    # no part ever read words, exponents, signs, commas or doubled units
    ["", " ", "5 minutes", "2 hours", "m5", "1,5h", "5mm", "abc", "1e3s", "-5s", "+5s", "5 m s", "h", ".5h", "5.h"]
    + [None, [], {}, True, False],
)
def test_what_no_part_read_is_refused_naming_the_forms(value: Any) -> None:
    with pytest.raises(ValueError, match="not a duration") as caught:
        parse_duration(value)
    assert FORMS in str(caught.value) and "250ms, 30s, 5m, 1.5h, 7d, 2w" in FORMS


@pytest.mark.parametrize("value", [-1, -0.5])
def test_negative_numbers_are_refused(value: float) -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        parse_duration(value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "inf", "nan", "9" * 400 + "s"])
def test_non_finite_values_are_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", [0, 0.0, "0", "0s", "0.0h"])
def test_positive_refuses_zero_and_only_zero(value: Any) -> None:
    assert parse_duration(value) == 0.0
    with pytest.raises(ValueError, match="longer than zero"):
        parse_duration(value, positive=True)
    assert parse_duration("1ms", positive=True) == 0.001


_NUMBER = st.builds(
    lambda whole, fraction: f"{whole}.{fraction}" if fraction else str(whole),
    st.integers(min_value=0, max_value=10**9),
    st.one_of(st.none(), st.from_regex(r"[0-9]{1,6}", fullmatch=True)),
)


@settings(max_examples=300, derandomize=True)
@given(
    number=_NUMBER,
    unit=st.sampled_from([*UNIT_SECONDS, ""]),
    upper=st.booleans(),
    gap=st.sampled_from(["", " ", "  "]),
)
def test_a_number_and_a_unit_round_trip_to_their_seconds(number: str, unit: str, upper: bool, gap: str) -> None:
    text = f"{gap}{number}{gap}{unit.upper() if upper else unit}{gap}"
    assert parse_duration(text) == pytest.approx(float(number) * UNIT_SECONDS.get(unit, 1.0), rel=1e-12)


@settings(max_examples=200, derandomize=True)
@given(seconds=st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_seconds_written_back_read_the_same(seconds: float) -> None:
    assert parse_duration(seconds) == seconds
    assert parse_duration(f"{seconds:f}s") == pytest.approx(seconds, rel=1e-9, abs=1e-6)


class _Durations(BaseModel):
    every: Seconds = 60.0
    until: OptionalSeconds = None
    deadline: PositiveSeconds = 1.0


def test_the_pydantic_types_read_durations_and_say_which_field_is_wrong() -> None:
    read = _Durations.model_validate({"every": "5m", "until": "2w", "deadline": "250ms"})
    assert (read.every, read.until, read.deadline) == (300.0, 14 * 86400.0, 0.25)
    assert _Durations.model_validate({"until": None}).until is None
    with pytest.raises(ValidationError) as caught:
        _Durations.model_validate({"every": "soon", "until": "-1s", "deadline": 0})
    errors = {e["loc"][0]: e["msg"] for e in caught.value.errors()}
    assert set(errors) == {"every", "until", "deadline"}
    assert "not a duration: 'soon'" in errors["every"] and "longer than zero" in errors["deadline"]


# -- every site reads the union, and keeps its own bounds ------------------------------------------------


def test_a_rollout_plan_reads_weeks_and_any_case() -> None:
    plan = build_plan({"interval": "1W", "deadline": "2w", "shadow_first": "30M"})
    assert (plan.interval, plan.deadline, plan.shadow_first) == (7 * 86400.0, 14 * 86400.0, 1800.0)
    assert build_plan({"interval": 0}).interval == 0.0  # a rollout may step at once


def test_a_review_policy_reads_milliseconds_and_spaces_and_still_refuses_zero() -> None:
    assert AutomationPolicy.model_validate({"review_deadline": " 1.5 h "}).review_deadline_seconds == 5400.0
    assert AutomationPolicy.model_validate({"review_deadline": "2w"}).review_deadline_seconds == 14 * 86400.0
    with pytest.raises(InvalidPolicy, match="longer than zero"):
        policy_of({"review_deadline": "0s"})
    assert window_start("250ms", NOW) == NOW - timedelta(milliseconds=250)
    with pytest.raises(ValueError, match="longer than zero"):
        window_start("0", NOW)
    with pytest.raises(ValueError, match="before the year 1"):
        window_start("99999999d", NOW)


def test_a_retraining_policy_reads_weeks_and_milliseconds() -> None:
    policy = RetrainPolicy.model_validate(
        {
            "deployment": "d",
            "trainer": "pkg.train:train",
            "triggers": {"schedule": "1w"},
            "data": {"production": {"window": "2W"}},
            "guards": {"cooldown": "90 m"},
            "timeout": "1500ms",
        }
    )
    assert policy.triggers.schedule == 7 * 86400.0 and policy.data.production.window == 14 * 86400.0
    assert (policy.guards.cooldown, policy.timeout) == (5400.0, 1.5)


def test_a_monitor_cooldown_reads_weeks_and_no_longer_a_negative_number() -> None:
    spec = {"name": "m", "metric": "error_rate", "when": "> 0.1"}
    assert MonitorSpec.model_validate({**spec, "cooldown": "1w"}).cooldown == 7 * 86400.0
    assert MonitorSpec.model_validate({**spec, "cooldown": "250ms"}).cooldown == 0.25
    with pytest.raises(ValidationError, match="negative"):
        MonitorSpec.model_validate({**spec, "cooldown": -5})


def test_a_token_expiry_reads_every_form_but_zero_and_says_never_too() -> None:
    assert parse_expiry("2w", NOW) == NOW + timedelta(weeks=2)
    assert parse_expiry("1.5h", NOW) == NOW + timedelta(hours=1.5)
    assert parse_expiry("30m", NOW) == NOW + timedelta(minutes=30)
    assert parse_expiry("Never", NOW) is None and parse_expiry(None, NOW) is None and parse_expiry(" ", NOW) is None
    for bad in ("forever", "0d", "-1d"):
        with pytest.raises(InvalidPrincipal, match="cannot read the expiry .*or never"):
            parse_expiry(bad, NOW)
    with pytest.raises(InvalidPrincipal, match="too far in the future"):
        parse_expiry("99999999w", NOW)
