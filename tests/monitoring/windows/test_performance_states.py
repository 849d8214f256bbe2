"""The accumulators' stored states: what ``to_state`` writes fits the declared type, and a state as
databases hold it today reads back to the same JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.shapes import misfits

from matchday.monitoring.windows.performance import (
    Calibrator,
    CalibratorState,
    CBPEEstimate,
    CBPEState,
    ClassificationPerformance,
    ClassificationState,
    RegressionPerformance,
    RegressionState,
)

CLASSES = ["ham", "spam"]
Y = np.array(["spam", "ham", "spam", "ham"])
PRED = np.array(["spam", "ham", "ham", "ham"])
PROBA = np.array([0.9, 0.2, 0.4, 0.1])

# as a window of four labelled rows stores them (JSON read back from the database)
STORED_CLASSIFICATION = {
    "kind": "classification",
    "classes": ["ham", "spam"],
    "bins": 10,
    "confusion": [[2, 0, 0], [1, 1, 0], [0, 0, 0]],
    "scored": 4,
    "log_loss_sum": 1.4607312453,
    "histograms": [[[5.0, 0.0, 1.0], [6.0, 0.0, 1.0], [8.0, 1.0, 0.0], [9.0, 1.0, 0.0]], [[1.0, 0.0, 1.0]]],
}
STORED_REGRESSION = {
    "kind": "regression",
    "n": 3,
    "missing": 1,
    "scale": 2,
    "sum_error": 0.25,
    "sum_abs_error": 0.75,
    "sum_sq_error": 0.3125,
    "sum_y": 1.5,
    "m2_y": 0.5,
}


def states() -> list[tuple[object, type]]:
    cbpe = CBPEEstimate(CLASSES).update(PRED, PROBA)
    return [
        (ClassificationPerformance(CLASSES).update(Y, PRED, PROBA).to_state(), ClassificationState),
        (
            RegressionPerformance().update(np.array([1.0, 2.0, np.nan]), np.array([1.5, 1.0, 0.0])).to_state(),
            RegressionState,
        ),
        (cbpe.to_state(), CBPEState),
        (Calibrator.fit(CLASSES, np.column_stack([1 - PROBA, PROBA]), Y).to_state(), CalibratorState),
    ]


@pytest.mark.parametrize("index", range(4), ids=["classification", "regression", "cbpe", "calibrator"])
def test_a_state_fits_its_type_and_round_trips_through_json(index: int) -> None:
    state, shape = states()[index]
    assert misfits(state, shape) == []
    stored = json.loads(json.dumps(state))
    assert misfits(stored, shape) == []
    kind = {"classification": ClassificationPerformance, "regression": RegressionPerformance}.get(
        stored["kind"], {"cbpe": CBPEEstimate, "calibrator": Calibrator}.get(stored["kind"])
    )
    assert kind.from_state(stored).to_state() == state


def test_todays_stored_states_read_unchanged() -> None:
    assert misfits(STORED_CLASSIFICATION, ClassificationState) == []
    assert ClassificationPerformance.from_state(STORED_CLASSIFICATION).to_state() == STORED_CLASSIFICATION
    assert RegressionPerformance.from_state(STORED_REGRESSION).to_state() == STORED_REGRESSION
    unscaled = {k: v for k, v in STORED_REGRESSION.items() if k != "scale"}  # stored before the sums were scaled
    assert misfits(unscaled, RegressionState) == []
    assert RegressionPerformance.from_state(unscaled).to_state() == {**unscaled, "scale": 0}


def test_the_check_catches_a_state_of_another_shape() -> None:
    state = ClassificationPerformance(CLASSES).update(Y, PRED).to_state()
    assert misfits({**state, "extra": 1}, ClassificationState) == ["$: 'extra' is not a key of ClassificationState"]
    assert misfits({k: v for k, v in state.items() if k != "scored"}, ClassificationState) == ["$: no 'scored'"]
    assert misfits({**state, "kind": "cbpe"}, ClassificationState) != []
