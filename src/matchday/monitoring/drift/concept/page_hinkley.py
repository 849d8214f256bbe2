"""Page-Hinkley: a cumulative sum of the errors' deviations from their fading mean.

>>> import numpy as np
>>> rng = np.random.default_rng(3)
>>> detector = PageHinkley(mode="up", threshold=20.0)
>>> found = []
>>> for i, error in enumerate(np.concatenate([rng.normal(1.0, 0.3, 1000), rng.normal(2.0, 0.3, 500)])):
...     detector.update(float(error))
...     if detector.drift_detected:
...         found.append(i)
>>> bool(found) and 1000 <= found[0] < 1100  # the mean error doubled at row 1000
True
"""

from __future__ import annotations

import math
from typing import Any

from matchday.monitoring.drift.concept.base import (
    ConceptDriftDetector,
    DetectorError,
    Mode,
    float_param,
    int_param,
)


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
        self.min_instances = int_param("min_instances", min_instances, 1)
        self.delta = float_param("delta", delta, 0.0, math.inf, low_open=False, high_open=True)
        self.threshold = float_param("threshold", threshold, 0.0, math.inf, low_open=True, high_open=True)
        self.alpha = float_param("alpha", alpha, 0.0, 1.0, low_open=True, high_open=False)
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
