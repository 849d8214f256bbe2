"""Window and segment names (`matchday.monitoring.windows.names`): the one reader the CLI, the API, the
dashboard and the monitors share, what it refuses, and why a name finds no windows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matchday.errors import MatchdayError
from matchday.monitoring import (
    TIME_WIDTHS,
    InvalidMonitor,
    MonitorSpec,
    UnknownWindow,
    count_width,
    parse_monitors,
    parse_segment,
    parse_window,
    segment_features,
    unkept_segment,
    unkept_window,
    window_names,
)


@pytest.mark.parametrize(("name", "seconds"), [("5m", 300), ("1h", 3600), ("1d", 86400)])
def test_windows_by_time(name: str, seconds: int) -> None:
    window = parse_window(name)
    assert (window.name, window.seconds, window.rows, window.by_time) == (name, seconds, None, True)


@given(rows=st.integers(min_value=1, max_value=10**12))
def test_a_count_width_reads_back_as_its_rows(rows: int) -> None:
    window = parse_window(count_width(rows))
    assert (window.rows, window.seconds, window.by_time) == (rows, None, False)


# names are keys of stored windows: only the spelling the server writes finds them
@pytest.mark.parametrize(
    "name", ["", "7m", "5M", "1 h", "0rows", "007rows", "rows", "1000 rows", "1000rows ", "-5rows"]
)
def test_other_names_are_refused_naming_the_windows(name: str) -> None:
    with pytest.raises(UnknownWindow, match=f"unknown window {name!r}; one of 5m, 1h, 1d, 500rows"):
        parse_window(name, count_window=500)
    with pytest.raises(ValueError, match=r"or N rows \(1000rows\)"):  # a ValueError: Pydantic reports it
        parse_window(name)


def test_unknown_window_is_a_matchday_error() -> None:
    assert issubclass(UnknownWindow, MatchdayError) and issubclass(UnknownWindow, ValueError)


def test_window_names_are_the_time_widths_and_the_count() -> None:
    assert window_names(1000) == [*TIME_WIDTHS, "1000rows"]


def test_only_a_count_this_server_does_not_keep_is_unkept() -> None:
    assert unkept_window(parse_window("1h"), 1000) is None
    assert unkept_window(parse_window("1000rows"), 1000) is None
    unkept = unkept_window(parse_window("7rows"), 1000)
    assert isinstance(unkept, UnknownWindow)
    assert str(unkept) == "no windows of '7rows': this server counts windows of 1000rows; one of 5m, 1h, 1d, 1000rows"


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("", None),
        ("country=DE", ("country", "DE")),
        ("@source=batch", ("@source", "batch")),
        ("@device=till-7", ("@device", "till-7")),
        ("formula=a=b", ("formula", "a=b")),  # the first = splits: a value may hold one
    ],
)
def test_segments(text: str, parsed: tuple[str, str] | None) -> None:
    assert parse_segment(text) == parsed


@pytest.mark.parametrize("text", ["country", "=DE", "country="])
def test_a_segment_is_feature_equals_value(text: str) -> None:
    with pytest.raises(UnknownWindow, match="is not FEATURE=VALUE"):
        parse_segment(text)


def test_a_deployment_is_sliced_by_its_features_or_everyones_then_the_origins() -> None:
    segments = {"*": ["country"], "fraud": ["merchant", "channel"]}
    assert segment_features(segments, "fraud") == ["merchant", "channel", "@source", "@device"]
    assert segment_features(segments, "digits") == ["country", "@source", "@device"]
    assert segment_features({}, "digits") == ["@source", "@device"]


def test_a_segment_by_a_feature_nobody_slices_by_says_what_is_sliced() -> None:
    features = segment_features({"fraud": ["merchant"]}, "fraud")
    assert unkept_segment("", features, "fraud") is None
    assert unkept_segment("merchant=m-1", features, "fraud") is None  # sliced by: no windows *yet*
    assert unkept_segment("@source=batch", features, "fraud") is None
    unkept = unkept_segment("country=DE", features, "fraud")
    assert isinstance(unkept, UnknownWindow)
    assert "fraud is not sliced by 'country' but by merchant and by @source, @device" in str(unkept)
    assert "monitoring.segments" in str(unkept)
    bare = unkept_segment("country=DE", segment_features({}, "fraud"), "fraud")
    assert bare is not None and "but by @source and @device only" in str(bare)


def test_monitors_read_window_names_with_the_same_parser() -> None:
    spec = {"name": "m", "metric": "error_rate", "when": "> 0.1"}
    assert MonitorSpec.model_validate({**spec, "window": "1h"}).window == "1h"
    for bad in ("7m", "0rows", "1000 rows"):
        with pytest.raises(ValueError, match="unknown window"):
            MonitorSpec.model_validate({**spec, "window": bad})
    with pytest.raises(InvalidMonitor) as caught:
        parse_monitors([{**spec, "window": "500rows"}], count_window=1000)
    assert "window 500rows is not the configured count window (1000rows" in str(caught.value)
