"""The summarizer's state between ticks, as the monitor state keeps it: ``summarizer`` (its cursors into
the log, the windows by count and the segments' values, the concept-drift detectors) and, per version,
``panes␟<series>`` (its sliding window's panes; `panes_key`).

Plain JSON, read back as it was written; the arrays of mixed items are lists (JSON has no tuples), named
below by what each position holds. A version's maps are keyed by its `SeriesKey` text.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict, cast

from matchday.monitoring.windows.series import SeriesKey, join_key

STATE_KEY = "summarizer"
PANES_KEY = "panes"

IdGap = list[Any]  # [first id, last id, when the cursor passed them (epoch seconds)]: looked for again a while
CountWindow = list[Any]  # [start (ISO 8601), rows, lowest row id, highest row id] of a window by count
Detection = list[Any]  # [row id, time (ISO 8601)] of a row where a concept-drift detector fired
Pane = list[Any]  # [start (ISO 8601), rows, its summary (a WindowSummary; None until it has rows)]


class Detectors(TypedDict):
    """Each version's concept-drift detector (as its ``to_state`` saves it) and where it fired."""

    detectors: dict[str, dict[str, Any]]
    detections: dict[str, list[Detection]]  # the latest, oldest first


class SummarizerState(TypedDict):
    cursor: int  # the last row id summarised before the columnar log: rows up to it are not read again
    gaps: list[IdGap]  # row ids the cursor passed before the columnar log
    batch_cursor: NotRequired[int]  # the last log batch read (absent in a state from before the columnar log)
    batch_gaps: NotRequired[list[IdGap]]  # batch ids passed unseen (PostgreSQL commits them out of order)
    label_cursor: str | None  # the newest label time read (ISO 8601)
    labels_seen: NotRequired[dict[str, str]]  # row id -> label time, of the labels within the overlap
    counts: dict[str, list[CountWindow]]  # each version's windows by count, newest last
    segment_values: dict[str, dict[str, list[str]]]  # deployment -> feature -> the values with their own windows
    detectors: NotRequired[dict[str, dict[str, Any]]]  # as in `Detectors`, once a label has arrived
    detections: NotRequired[dict[str, list[Detection]]]


class PanesState(TypedDict):
    panes: list[Pane]  # oldest first


def new_state() -> SummarizerState:
    return {
        "cursor": 0,
        "gaps": [],
        "batch_cursor": 0,
        "batch_gaps": [],
        "label_cursor": None,
        "counts": {},
        "segment_values": {},
    }


def read_state(stored: dict[str, Any] | None) -> SummarizerState:
    """The state as the last tick stored it (a new one the first time)."""
    return cast(SummarizerState, stored) if stored else new_state()


def panes_key(series: SeriesKey) -> str:
    """The monitor state's key of a version's sliding-window panes: ``panes␟deployment␟model␟version``."""
    return join_key(PANES_KEY, series.to_text())


def read_panes(stored: dict[str, Any] | None) -> PanesState:
    return cast(PanesState, stored) if stored else {"panes": []}


def as_stored(state: SummarizerState | PanesState) -> dict[str, Any]:
    """The state as the monitor state store takes it: the same JSON, untyped."""
    return cast(dict[str, Any], state)
