"""Concept-drift detectors over a stream of per-row prediction errors (0/1 mistakes or real errors).

Input drift can be absent while the model still decays; once labels arrive, these detectors watch the
errors themselves. They follow River's small interface and arithmetic, and serialise to JSON so the
server can keep one in the database between ticks and resume it exactly.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, Self

import numpy as np

from matchday.errors import MatchdayError

STATE_VERSION = 1
Mode = Literal["up", "down", "both"]


class DetectorError(MatchdayError, ValueError):
    """A detector was asked for with a bad name or parameter, fed a bad value, or given a bad state."""


def _int_param(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise DetectorError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _float_param(name: str, value: Any, low: float, high: float, *, low_open: bool, high_open: bool) -> float:
    """A real number in an interval; the message writes the interval the way a reader would."""
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    v = float(value) if ok else math.nan
    inside = (
        ok
        and math.isfinite(v)
        and (v > low if low_open else v >= low)
        and (v < high if high_open else v <= high)
    )
    if not inside:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise DetectorError(f"{name} must be a number in {interval}, got {value!r}")
    return v


def _accepted(value_range: tuple[float, float]) -> str:
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
            raise DetectorError(f"{self.name} reads {_accepted(self.value_range)}, got {x!r}")
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
            detector._n = _int_param("n", state["n"], 0)
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


class ADWIN(ConceptDriftDetector):
    """ADaptive WINdowing (Bifet & Gavaldà 2007), the exponential-histogram version River implements.

    The window is kept as rows of buckets: row ``i`` holds up to ``max_buckets`` summaries (total and
    variance) of ``2**i`` values each, oldest first, so memory is logarithmic in the window. Every
    ``clock`` updates, once the window is longer than ``grace_period``, every bucket boundary splits
    it into an older and a newer part of at least ``min_window_length`` values; a difference of
    means above a Hoeffding/Bernstein bound (with the window's variance) drops the oldest bucket and
    flags drift. As in River, the whole window restarts on the update after a detection.
    """

    name = "adwin"

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        super().__init__()
        self.delta = _float_param("delta", delta, 0.0, 1.0, low_open=True, high_open=True)
        self.clock = _int_param("clock", clock, 1)
        self.max_buckets = _int_param("max_buckets", max_buckets, 1)
        self.min_window_length = _int_param("min_window_length", min_window_length, 1)
        self.grace_period = _int_param("grace_period", grace_period, 0)
        self._reset()

    def _reset(self) -> None:
        # row i: totals and variances (sum of squared deviations) of buckets of 2**i values, oldest first
        self._totals: list[list[float]] = [[]]
        self._variances: list[list[float]] = [[]]
        self._total = 0.0
        self._variance = 0.0  # sum of squared deviations over the window
        self._width = 0.0
        self._tick = 0

    @property
    def width(self) -> int:
        """How many of the latest values the window holds."""
        return int(self._width)

    @property
    def estimation(self) -> float:
        """The mean of the window: the current error rate (or mean error)."""
        return self._total / self._width if self._width else 0.0

    @property
    def variance(self) -> float:
        """The window's variance (population), the spread the cut bound scales with."""
        return self._variance / self._width if self._width else 0.0

    def params(self) -> dict[str, Any]:
        return {
            "delta": self.delta,
            "clock": self.clock,
            "max_buckets": self.max_buckets,
            "min_window_length": self.min_window_length,
            "grace_period": self.grace_period,
        }

    def _update(self, x: float) -> None:
        self._insert(x)
        self._drift_detected = self._detect_change()

    # The arithmetic below keeps River's order of operations, so detections match it bit for bit.

    def _insert(self, x: float) -> None:
        self._totals[0].append(x)
        self._variances[0].append(0.0)
        self._width += 1.0
        if self._width > 1.0:
            d = x - self._total / (self._width - 1.0)
            self._variance += (self._width - 1.0) * d * d / self._width
        self._total += x
        self._compress()

    def _compress(self) -> None:
        """Merge the two oldest buckets of any row that overflowed into one bucket of the next row."""
        i = 0
        while len(self._totals[i]) > self.max_buckets:
            size = float(1 << i)
            t0, t1 = self._totals[i][0], self._totals[i][1]
            v0, v1 = self._variances[i][0], self._variances[i][1]
            mu0, mu1 = t0 / size, t1 / size
            merged_variance = v0 + v1 + size * 0.5 * (mu0 - mu1) * (mu0 - mu1)
            if i + 1 == len(self._totals):
                self._totals.append([])
                self._variances.append([])
            self._totals[i + 1].append(t0 + t1)
            self._variances[i + 1].append(merged_variance)
            del self._totals[i][:2], self._variances[i][:2]
            i += 1

    def _drop_oldest(self) -> None:
        last = len(self._totals) - 1
        size = float(1 << last)
        u, v = self._totals[last][0], self._variances[last][0]
        mu = u / size
        self._width -= size
        self._total -= u
        mu_window = self._total / self._width
        self._variance -= v + size * self._width * (mu - mu_window) * (mu - mu_window) / (size + self._width)
        del self._totals[last][0], self._variances[last][0]
        # all empty rows at the old end go (River pops only one, and panics on the next drop when
        # max_buckets=1 has left an empty row under it); row 0 stays, it takes the next value
        while len(self._totals) > 1 and not self._totals[-1]:
            self._totals.pop()
            self._variances.pop()

    def _detect_change(self) -> bool:
        self._tick += 1
        if self._tick % self.clock != 0 or self._width <= self.grace_period:
            return False
        detected = False
        while self._cut_found():
            detected = True
            self._drop_oldest()
        return detected

    def _cut_found(self) -> bool:
        """Whether some split of the window (oldest part first) differs by more than the bound."""
        m = float(self.min_window_length)
        width, total = self._width, self._total
        if width < 2.0 * m:
            return False  # no split leaves both parts min_window_length long
        log_term = math.log(2.0 * math.log(width) / self.delta)
        window_variance = self._variance / width
        n0, n1, u0, u1 = 0.0, width, 0.0, total
        for i in range(len(self._totals) - 1, -1, -1):
            size = float(1 << i)
            row = self._totals[i]
            for k, bucket_total in enumerate(row):
                n0 += size
                n1 -= size
                u0 += bucket_total
                u1 -= bucket_total
                if i == 0 and k == len(row) - 1:
                    return False  # the newest value alone is never a sub-window
                if n1 >= m and n0 >= m:
                    m_recip = 1.0 / (n0 - m + 1.0) + 1.0 / (n1 - m + 1.0)
                    epsilon = math.sqrt(2.0 * m_recip * window_variance * log_term) + 2.0 / 3.0 * log_term * m_recip
                    if abs(u0 / n0 - u1 / n1) > epsilon:
                        return True
        return False

    def _state(self) -> dict[str, Any]:
        return {
            "totals": [list(row) for row in self._totals],
            "variances": [list(row) for row in self._variances],
            "total": self._total,
            "variance": self._variance,
            "width": self._width,
            "tick": self._tick,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        totals = [[float(v) for v in row] for row in state["totals"]]
        variances = [[float(v) for v in row] for row in state["variances"]]
        if not totals or [len(r) for r in totals] != [len(r) for r in variances]:
            raise DetectorError("malformed adwin detector state: bucket rows do not line up")
        if any(len(r) > self.max_buckets for r in totals):
            raise DetectorError("malformed adwin detector state: a bucket row is over max_buckets")
        width = float(state["width"])
        if width != sum(len(r) * (1 << i) for i, r in enumerate(totals)):
            raise DetectorError("malformed adwin detector state: width does not match the buckets")
        self._totals, self._variances = totals, variances
        self._total = float(state["total"])
        self._variance = float(state["variance"])
        self._width = width
        self._tick = _int_param("tick", state["tick"], 0)


class PageHinkley(ConceptDriftDetector):
    """Page-Hinkley (a CUSUM on deviations from a fading mean), as River implements it.

    ``mode="up"`` watches for the mean rising (errors growing), ``"down"`` for it falling, ``"both"``
    (River's default) for either. No detection before ``min_instances`` values since the last reset.
    ``threshold`` is in the errors' own units, so it wants scaling for real-valued errors: on a
    stationary stream of 10,000 ``|N(0, 1)|`` errors the defaults raise a false alarm most times.
    """

    name = "page_hinkley"

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: Mode = "both",
    ) -> None:
        super().__init__()
        self.min_instances = _int_param("min_instances", min_instances, 1)
        self.delta = _float_param("delta", delta, 0.0, math.inf, low_open=False, high_open=True)
        self.threshold = _float_param("threshold", threshold, 0.0, math.inf, low_open=True, high_open=True)
        self.alpha = _float_param("alpha", alpha, 0.0, 1.0, low_open=True, high_open=False)
        if mode not in ("up", "down", "both"):
            raise DetectorError(f"mode must be one of 'up', 'down', 'both', got {mode!r}")
        self.mode: Mode = mode
        self._reset()

    def _reset(self) -> None:
        self._mean = 0.0
        self._count = 0.0
        self._sum_increase = 0.0
        self._sum_decrease = 0.0
        self._min_increase: float | None = None  # None until the first value (River: +inf)
        self._max_decrease: float | None = None

    def params(self) -> dict[str, Any]:
        return {
            "min_instances": self.min_instances,
            "delta": self.delta,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "mode": self.mode,
        }

    def _update(self, x: float) -> None:
        self._count += 1.0
        self._mean += (1.0 / self._count) * (x - self._mean)
        dev = x - self._mean
        self._sum_increase = self.alpha * self._sum_increase + dev - self.delta
        self._sum_decrease = self.alpha * self._sum_decrease + dev + self.delta
        if self._min_increase is None or self._sum_increase < self._min_increase:
            self._min_increase = self._sum_increase
        if self._max_decrease is None or self._sum_decrease > self._max_decrease:
            self._max_decrease = self._sum_decrease
        if self._count >= self.min_instances:
            up = self._sum_increase - self._min_increase > self.threshold
            down = self._max_decrease - self._sum_decrease > self.threshold
            self._drift_detected = {"up": up, "down": down, "both": up or down}[self.mode]

    def _state(self) -> dict[str, Any]:
        return {
            "mean": self._mean,
            "count": self._count,
            "sum_increase": self._sum_increase,
            "sum_decrease": self._sum_decrease,
            "min_increase": self._min_increase,
            "max_decrease": self._max_decrease,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self._mean = float(state["mean"])
        self._count = float(state["count"])
        self._sum_increase = float(state["sum_increase"])
        self._sum_decrease = float(state["sum_decrease"])
        self._min_increase = None if state["min_increase"] is None else float(state["min_increase"])
        self._max_decrease = None if state["max_decrease"] is None else float(state["max_decrease"])


class DDM(ConceptDriftDetector):
    """Drift Detection Method (Gama et al. 2004) on a 0/1 error stream, as River implements it.

    It remembers where error rate plus its standard error was lowest; ``warning_threshold`` and
    ``drift_threshold`` standard errors above that raise a warning, then a drift (which resets).
    It is quick to cry wolf: if the first ``warm_start`` rows hold no mistake, the standard error is
    0 and the first mistake is drift; and on 5,000 stationary rows at a 10% error rate, one seeded
    stream in six raises a detection even with ``warm_start=300`` (one in a hundred with
    ``drift_threshold=4``). Prefer a warm start of a few hundred rows.
    """

    name = "ddm"
    value_range = (0.0, 1.0)

    def __init__(self, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0) -> None:
        super().__init__()
        self.warm_start = _int_param("warm_start", warm_start, 0)
        self.warning_threshold = _float_param(
            "warning_threshold", warning_threshold, 0.0, math.inf, low_open=True, high_open=True
        )
        self.drift_threshold = _float_param(
            "drift_threshold", drift_threshold, 0.0, math.inf, low_open=True, high_open=True
        )
        if self.warning_threshold > self.drift_threshold:
            raise DetectorError(
                f"warning_threshold ({warning_threshold!r}) must not exceed drift_threshold "
                f"({drift_threshold!r}): the warning could never show"
            )
        self._warning_detected = False
        self._reset()

    @property
    def warning_detected(self) -> bool:
        """The error rate is up enough to watch closely, not yet enough to call drift."""
        return self._warning_detected

    def _reset(self) -> None:
        self._warning_detected = False
        self._p = 0.0
        self._count = 0.0
        self._p_min: float | None = None
        self._s_min: float | None = None

    def params(self) -> dict[str, Any]:
        return {
            "warm_start": self.warm_start,
            "warning_threshold": self.warning_threshold,
            "drift_threshold": self.drift_threshold,
        }

    def _update(self, x: float) -> None:
        self._count += 1.0
        self._p += (1.0 / self._count) * (x - self._p)
        p = self._p
        s = math.sqrt(max(p * (1 - p), 0.0) / self._count)
        if self._count <= self.warm_start:
            return
        if self._p_min is None or self._s_min is None or p + s <= self._p_min + self._s_min:
            self._p_min, self._s_min = p, s
        self._warning_detected = p + s > self._p_min + self.warning_threshold * self._s_min
        if p + s > self._p_min + self.drift_threshold * self._s_min:
            self._drift_detected = True
            self._warning_detected = False

    def _state(self) -> dict[str, Any]:
        return {
            "p": self._p,
            "count": self._count,
            "p_min": self._p_min,
            "s_min": self._s_min,
            "warning_detected": self._warning_detected,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self._p = float(state["p"])
        self._count = float(state["count"])
        self._p_min = None if state["p_min"] is None else float(state["p_min"])
        self._s_min = None if state["s_min"] is None else float(state["s_min"])
        self._warning_detected = bool(state["warning_detected"])


DETECTORS: dict[str, type[ConceptDriftDetector]] = {"adwin": ADWIN, "page_hinkley": PageHinkley, "ddm": DDM}


def make_detector(name: str, **params: Any) -> ConceptDriftDetector:
    """A detector by its configured name; a `DetectorError` (a ValueError) says what would be valid."""
    cls = DETECTORS.get(name)
    if cls is None:
        raise DetectorError(f"unknown concept-drift detector {name!r}; choose one of {', '.join(sorted(DETECTORS))}")
    known = list(cls().params())
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise DetectorError(
            f"{name} has no parameter {', '.join(map(repr, unknown))}; its parameters are {', '.join(known)}"
        )
    return cls(**params)


def detector_from_state(state: dict[str, Any]) -> ConceptDriftDetector:
    """Resume whichever detector a stored state describes."""
    name = state.get("detector") if isinstance(state, dict) else None
    if not isinstance(name, str) or name not in DETECTORS:
        raise DetectorError(f"unknown concept-drift detector {name!r}; choose one of {', '.join(sorted(DETECTORS))}")
    return DETECTORS[name].from_state(state)


def update_many(detector: ConceptDriftDetector, values: np.ndarray | Sequence[float]) -> list[int]:
    """Feed a window's errors in order; the 0-based positions where drift was detected.

    The whole batch is checked first, so a bad value leaves the detector as it was.

    >>> rng = np.random.default_rng(7)
    >>> errors = np.concatenate([rng.random(1000) < 0.1, rng.random(1000) < 0.4])
    >>> found = update_many(make_detector("adwin"), errors)  # the error rate went up at 1000
    >>> len(found), 1000 <= found[0] < 1200
    (1, True)
    """
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DetectorError(f"update_many reads numbers: {exc}") from None
    if array.ndim != 1:
        raise DetectorError(f"update_many reads a 1-D array of errors, got shape {array.shape}")
    low, high = detector.value_range
    if array.size and not (np.isfinite(array).all() and array.min() >= low and array.max() <= high):
        bad = np.flatnonzero(~(np.isfinite(array) & (array >= low) & (array <= high)))
        raise DetectorError(
            f"{detector.name} reads {_accepted(detector.value_range)}; {bad.size} of {array.size} values "
            f"are not (first at index {int(bad[0])}: {float(array[bad[0]])!r})"
        )
    found: list[int] = []
    update = detector.update
    for i, x in enumerate(array.tolist()):
        update(x)
        if detector.drift_detected:
            found.append(i)
    return found
