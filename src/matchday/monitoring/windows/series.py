"""The keys monitoring keeps its state under, as the text every database already holds.

A series is a deployment version. Its key, ``deployment␟model␟version`` (``␟`` the unit separator,
``\\x1f``, which no name holds), names its count windows, concept-drift detector and detections in the
summarizer's state, its panes and its failure counts; a monitor's state on a series and segment is
``monitor␟name␟deployment␟model:version␟segment`` (``judged␟...`` for the last window it judged).
These types build and read those strings in one place: the text stays exactly as stored before them.
"""

from __future__ import annotations

from typing import NamedTuple

SEP = "\x1f"


def join_key(*parts: str) -> str:
    """A state key from its parts.

    >>> join_key("monitoring", "failures")
    'monitoring\\x1ffailures'
    """
    return SEP.join(parts)


class SeriesKey(NamedTuple):
    """A deployment version: what windows, panes, detectors and failure counts are kept by. A tuple
    ``(deployment, model, version)``, so it goes wherever one did."""

    deployment: str
    model: str
    version: int

    def to_text(self) -> str:
        """
        >>> SeriesKey("fraud", "demo-fraud", 2).to_text()
        'fraud\\x1fdemo-fraud\\x1f2'
        """
        return join_key(self.deployment, self.model, str(self.version))

    @classmethod
    def from_text(cls, text: str) -> SeriesKey:
        """
        >>> SeriesKey.from_text("fraud\\x1fdemo-fraud\\x1f2")
        SeriesKey(deployment='fraud', model='demo-fraud', version=2)
        """
        deployment, model, version = text.split(SEP)
        return cls(deployment, model, int(version))


class MonitorKey(NamedTuple):
    """A monitor's state on one series and segment: ``monitor`` (its breaches, its alert, its cooldown,
    kept by the alert engine) or ``judged`` (the start of the last window the loop judged it on)."""

    kind: str  # monitor | judged
    monitor: str
    series: SeriesKey
    segment: str  # "" for the whole traffic

    def to_text(self) -> str:
        """
        >>> MonitorKey("judged", "accuracy-drop", SeriesKey("fraud", "demo-fraud", 2), "").to_text()
        'judged\\x1faccuracy-drop\\x1ffraud\\x1fdemo-fraud:2\\x1f'
        """
        s = self.series
        return join_key(self.kind, self.monitor, s.deployment, f"{s.model}:{s.version}", self.segment)

    @classmethod
    def from_text(cls, text: str) -> MonitorKey:
        """The key's parts back (a segment's value may hold the separator; a monitor's name may not)."""
        kind, monitor, deployment, ref, segment = text.split(SEP, 4)
        model, _, version = ref.rpartition(":")
        return cls(kind, monitor, SeriesKey(deployment, model, int(version)), segment)
