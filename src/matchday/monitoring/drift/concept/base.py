"""The concept-drift detectors' one interface, their parameter checks and their JSON state.

Input drift can be absent while the model still decays; once labels arrive, these detectors watch the
errors themselves. They follow River's small interface and arithmetic, and serialise to JSON so the
server can keep one in the database between ticks and resume it exactly.
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar, Literal, Self

import numpy as np

from matchday.errors import MatchdayError

STATE_VERSION = 1
Mode = Literal["up", "down", "both"]


class DetectorError(MatchdayError, ValueError):
    """A detector was asked for with a bad name or parameter, fed a bad value, or given a bad state."""


def int_param(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise DetectorError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def float_param(name: str, value: Any, low: float, high: float, *, low_open: bool, high_open: bool) -> float:
    """A real number in an interval; the message writes the interval the way a reader would."""
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    v = float(value) if ok else math.nan
    inside = ok and math.isfinite(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not inside:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise DetectorError(f"{name} must be a number in {interval}, got {value!r}")
    return v


def accepted(value_range: tuple[float, float]) -> str:
    low, high = value_range
    return "finite numbers" if (low, high) == (-math.inf, math.inf) else f"numbers in [{low:g}, {high:g}]"


class ConceptDriftDetector(abc.ABC):
    """The family's one interface: ``update(x)``, then read ``drift_detected`` (True on that update only).

    ``n`` counts every value seen since creation (a detection does not reset it), so a persisted
    detector tells how much of the stream it has read.
    """

    name: ClassVar[str]
    # values outside this closed interval are refused (DDM reads a Bernoulli stream)
    value_range: ClassVar[tuple[float, float]] = (-math.inf, math.inf)

    def __init__(self) -> None:
        self._n = 0
        self._drift_detected = False

    @property
    def n(self) -> int:
        return self._n

    @property
    def drift_detected(self) -> bool:
        return self._drift_detected

    def update(self, x: float) -> None:
        """Read one value. After a detection the detector starts afresh on this update (as River does)."""
        v = self._check_value(x)
        if self._drift_detected:
            self._drift_detected = False
            self._reset()
        self._n += 1
        self._update(v)

    @abc.abstractmethod
    def _update(self, x: float) -> None: ...

    @abc.abstractmethod
    def _reset(self) -> None:
        """Forget the stream (but not ``n`` or the parameters)."""

    @abc.abstractmethod
    def params(self) -> dict[str, Any]:
        """The constructor's arguments, JSON-able."""

    @abc.abstractmethod
    def _state(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def _load_state(self, state: dict[str, Any]) -> None: ...

    def _check_value(self, x: float) -> float:
        # a NaN would poison a persisted detector for good, so it is refused before any state changes
        try:
            if isinstance(x, str | bytes):
                raise TypeError
            v = float(x)
        except (TypeError, ValueError):
            raise DetectorError(f"{self.name} reads numbers, got {x!r}") from None
        low, high = self.value_range
        if not (math.isfinite(v) and low <= v <= high):
            raise DetectorError(f"{self.name} reads {accepted(self.value_range)}, got {x!r}")
        return v

    def to_state(self) -> dict[str, Any]:
        """Everything needed to resume exactly: JSON-able (no inf or NaN), floats round-trip exactly."""
        return {
            "detector": self.name,
            "version": STATE_VERSION,
            "params": self.params(),
            "n": self._n,
            "drift_detected": self._drift_detected,
            "state": self._state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """The detector `to_state` described; `DetectorError` if the state is not one of this class's."""
        if not isinstance(state, dict) or state.get("detector") != cls.name:
            found = state.get("detector") if isinstance(state, dict) else type(state).__name__
            raise DetectorError(f"not a {cls.name} detector state (found {found!r})")
        if state.get("version") != STATE_VERSION:
            raise DetectorError(f"{cls.name} state version {state.get('version')!r} is not {STATE_VERSION}")
        try:
            detector = cls(**state["params"])
            detector._n = int_param("n", state["n"], 0)
            detector._drift_detected = bool(state["drift_detected"])
            detector._load_state(dict(state["state"]))
        except DetectorError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DetectorError(f"malformed {cls.name} detector state: {exc!r}") from None
        return detector

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
