"""ADWIN: a window over the errors that drops its older part when the two parts' means differ.

>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> detector = ADWIN()
>>> found = []
>>> for i, error in enumerate(np.concatenate([rng.random(1000) < 0.1, rng.random(1000) < 0.4])):
...     detector.update(float(error))
...     if detector.drift_detected:
...         found.append(i)
>>> len(found), 1000 <= found[0] < 1200  # the error rate went from 10% to 40% at row 1000
(1, True)
"""

from __future__ import annotations

import math
from typing import Any

from matchday.monitoring.drift.concept.base import (
    ConceptDriftDetector,
    DetectorError,
    float_param,
    int_param,
)


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
        self.delta = float_param("delta", delta, 0.0, 1.0, low_open=True, high_open=True)
        self.clock = int_param("clock", clock, 1)
        self.max_buckets = int_param("max_buckets", max_buckets, 1)
        self.min_window_length = int_param("min_window_length", min_window_length, 1)
        self.grace_period = int_param("grace_period", grace_period, 0)
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
        self._tick = int_param("tick", state["tick"], 0)
