"""DDM: the error rate against its lowest point so far, in standard errors.

>>> import numpy as np
>>> rng = np.random.default_rng(11)
>>> detector = DDM(warm_start=300)
>>> found = []
>>> for i, error in enumerate(np.concatenate([rng.random(2000) < 0.1, rng.random(1000) < 0.5])):
...     detector.update(float(error))
...     if detector.drift_detected:
...         found.append(i)
>>> bool(found) and 2000 <= found[0] < 2200  # from 10% to 50% mistakes at row 2000
True
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
        self.warm_start = int_param("warm_start", warm_start, 0)
        self.warning_threshold = float_param(
            "warning_threshold", warning_threshold, 0.0, math.inf, low_open=True, high_open=True
        )
        self.drift_threshold = float_param(
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
