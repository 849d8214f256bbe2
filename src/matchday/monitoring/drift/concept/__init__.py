"""Concept-drift detectors over a stream of per-row prediction errors (0/1 mistakes or real errors),
one per module: `ADWIN`, `PageHinkley`, `DDM`; made by name and resumed from their JSON state here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from matchday.monitoring.drift.concept.adwin import ADWIN
from matchday.monitoring.drift.concept.base import (
    STATE_VERSION,
    ConceptDriftDetector,
    DetectorError,
    Mode,
    accepted,
)
from matchday.monitoring.drift.concept.ddm import DDM
from matchday.monitoring.drift.concept.page_hinkley import PageHinkley

__all__ = [
    "ADWIN",
    "DDM",
    "DETECTORS",
    "STATE_VERSION",
    "ConceptDriftDetector",
    "DetectorError",
    "Mode",
    "PageHinkley",
    "detector_from_state",
    "make_detector",
    "update_many",
]

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
            f"{detector.name} reads {accepted(detector.value_range)}; {bad.size} of {array.size} values "
            f"are not (first at index {int(bad[0])}: {float(array[bad[0]])!r})"
        )
    found: list[int] = []
    update = detector.update
    for i, x in enumerate(array.tolist()):
        update(x)
        if detector.drift_detected:
            found.append(i)
    return found
