"""Window and segment names, read in one place for the CLI, the API, the dashboard and the monitors.

A window is named by its width: ``5m``, ``1h``, ``1d`` (by time) or ``1000rows`` (by count: the server
keeps windows of one count, ``monitoring.count_window``). A segment is ``feature=value`` for a feature
``monitoring.segments`` slices a deployment by, or an origin: ``@source=batch``, ``@device=till-7``; the
empty name is the whole traffic.

>>> parse_window("1h").seconds, parse_window("1000rows").rows
(3600, 1000)
>>> parse_segment("@source=batch")
('@source', 'batch')
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matchday.errors import MatchdayError

TIME_WIDTHS = {"5m": 300, "1h": 3600, "1d": 86400}  # the windows by time, and their seconds
SOURCE, DEVICE = "@source", "@device"  # origin segments: where rows came from, batch or edge (and which device)
_COUNT = re.compile(r"([1-9]\d*)rows")


class UnknownWindow(MatchdayError, ValueError):
    """A window or segment name that does not read, or that this server keeps no windows of; the message
    names the ones there are."""


@dataclass(frozen=True)
class WindowName:
    """A window's width, read: ``seconds`` for a window by time, ``rows`` for one by count."""

    name: str
    seconds: int | None = None
    rows: int | None = None

    @property
    def by_time(self) -> bool:
        return self.seconds is not None


def count_width(rows: int) -> str:
    """The name of the windows of ``rows`` rows each."""
    return f"{rows}rows"


def window_names(count_window: int) -> list[str]:
    """The windows a server with this count window keeps."""
    return [*TIME_WIDTHS, count_width(count_window)]


def parse_window(name: str, count_window: int | None = None) -> WindowName:
    """``name`` read, or `UnknownWindow` listing the names (with ``count_window``: this server's count)."""
    if name in TIME_WIDTHS:
        return WindowName(name, seconds=TIME_WIDTHS[name])
    if match := _COUNT.fullmatch(name):
        return WindowName(name, rows=int(match.group(1)))
    known = ", ".join(window_names(count_window)) if count_window else f"{', '.join(TIME_WIDTHS)} or N rows (1000rows)"
    raise UnknownWindow(f"unknown window {name!r}; one of {known}")


def unkept_window(window: WindowName, count_window: int) -> UnknownWindow | None:
    """Why a server whose count window is ``count_window`` has no windows named so (a count it does not
    keep), or None when it keeps them. Sites ask when a query found none: windows of an earlier count
    stay readable."""
    if window.by_time or window.rows == count_window:
        return None
    return UnknownWindow(
        f"no windows of {window.name!r}: this server counts windows of {count_width(count_window)}; "
        f"one of {', '.join(window_names(count_window))}"
    )


def segment_name(feature: str, value: object) -> str:
    return f"{feature}={value}"


def parse_segment(text: str) -> tuple[str, str] | None:
    """``(feature, value)`` of a segment's name, None for the whole traffic (``""``), or `UnknownWindow`."""
    if not text:
        return None
    feature, sep, value = text.partition("=")
    if not sep or not feature or not value:
        raise UnknownWindow(f"segment {text!r} is not FEATURE=VALUE (e.g. country=DE, {SOURCE}=batch)")
    return feature, value


def segment_features(segments: Mapping[str, Sequence[str]], deployment: str) -> list[str]:
    """What a deployment's windows are sliced by: its features in ``monitoring.segments`` (or those of
    ``"*"``), then the origins."""
    return [*segments.get(deployment, segments.get("*", [])), SOURCE, DEVICE]


def unkept_segment(text: str, features: Sequence[str], deployment: str) -> UnknownWindow | None:
    """Why there are no windows of segment ``text`` (a feature the deployment is not sliced by), or None
    when there may be. Asked when a query found none, like `unkept_window`."""
    parsed = parse_segment(text)
    if parsed is None or parsed[0] in features:
        return None
    configured = [f for f in features if f not in (SOURCE, DEVICE)]
    by = f"by {', '.join(configured)} and by {SOURCE}, {DEVICE}" if configured else f"by {SOURCE} and {DEVICE} only"
    return UnknownWindow(
        f"no windows of segment {text!r}: {deployment} is not sliced by {parsed[0]!r} but {by} "
        "(monitoring.segments in matchday.yaml names the features to slice by)"
    )
