"""Concept-drift detectors: River as the oracle (same detections, same indices), properties on seeded
streams without River, an exact resume through a JSON state, and clear errors for bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from matchday.monitoring.drift.concept import (
    ADWIN,
    DDM,
    DETECTORS,
    ConceptDriftDetector,
    DetectorError,
    PageHinkley,
    detector_from_state,
    make_detector,
    update_many,
)

CHANGE = 2000  # where the seeded streams change


def abrupt_bernoulli(rng: np.random.Generator) -> np.ndarray:
    return np.concatenate([rng.random(CHANGE) < 0.1, rng.random(1500) < 0.4]).astype(float)


def gradual_bernoulli(rng: np.random.Generator) -> np.ndarray:
    p = np.interp(np.arange(4000), [CHANGE, 3500], [0.1, 0.5])
    return (rng.random(4000) < p).astype(float)


def stationary_bernoulli(rng: np.random.Generator) -> np.ndarray:
    return (rng.random(5000) < 0.1).astype(float)


def repeated_bernoulli(rng: np.random.Generator) -> np.ndarray:
    """Several changes, so the detectors reset and start over more than once."""
    return np.concatenate([rng.random(800) < p for p in (0.1, 0.5, 0.05, 0.3, 0.6)]).astype(float)


def real_jump(rng: np.random.Generator) -> np.ndarray:
    """Absolute errors of a regression that gets worse by 1.5 at CHANGE."""
    errors = np.abs(rng.normal(size=3500))
    errors[CHANGE:] += 1.5
    return errors


def real_heavy_tailed(rng: np.random.Generator) -> np.ndarray:
    return np.abs(rng.standard_t(3, size=3000)) * 10 + np.repeat(rng.normal(size=6) * 5, 500)


BINARY_STREAMS: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "abrupt_bernoulli": abrupt_bernoulli,
    "gradual_bernoulli": gradual_bernoulli,
    "stationary_bernoulli": stationary_bernoulli,
    "repeated_bernoulli": repeated_bernoulli,
}
REAL_STREAMS: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "real_jump": real_jump,
    "real_heavy_tailed": real_heavy_tailed,
}
SEEDS = (0, 1, 2)

# River's defaults, and one set per detector that moves every knob
ORACLE_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "adwin-default": ("adwin", {}),
    "adwin-tuned": ("adwin", {"delta": 0.05, "clock": 3, "max_buckets": 3, "min_window_length": 8, "grace_period": 40}),
    "page_hinkley-default": ("page_hinkley", {}),
    "page_hinkley-up": (
        "page_hinkley",
        {"min_instances": 50, "delta": 0.01, "threshold": 20.0, "alpha": 0.999, "mode": "up"},
    ),
    "page_hinkley-down": ("page_hinkley", {"threshold": 25.0, "mode": "down"}),
    "ddm-default": ("ddm", {}),
    "ddm-tuned": ("ddm", {"warm_start": 300, "warning_threshold": 2.5, "drift_threshold": 4.0}),
}


def trace(detector: Any, values: np.ndarray) -> tuple[list[int], list[int]]:
    """Drift and warning indices, read through the interface River and we share."""
    drifts, warnings = [], []
    for i, x in enumerate(values.tolist()):
        detector.update(x)
        if detector.drift_detected:
            drifts.append(i)
        if getattr(detector, "warning_detected", False):
            warnings.append(i)
    return drifts, warnings


@pytest.fixture(scope="module")
def river_drift() -> ModuleType:
    river = pytest.importorskip("river")
    from river import drift

    assert river is not None
    return drift


def river_detector(drift: ModuleType, name: str, params: dict[str, Any]) -> Any:
    cls = {"adwin": drift.ADWIN, "page_hinkley": drift.PageHinkley, "ddm": drift.binary.DDM}[name]
    return cls(**params)


# --- River as the oracle -------------------------------------------------------------------------
# Exact equality, ADWIN included: our arithmetic keeps River's order of floating-point operations, so
# no tolerance is needed (checked on ~800 random streams and parameter sets while writing this).


@pytest.mark.parametrize("stream", [*BINARY_STREAMS, *REAL_STREAMS])
@pytest.mark.parametrize("config", list(ORACLE_CONFIGS))
def test_same_detections_as_river(river_drift: ModuleType, config: str, stream: str) -> None:
    name, params = ORACLE_CONFIGS[config]
    if name == "ddm" and stream in REAL_STREAMS:
        pytest.skip("DDM reads 0/1 errors only")
    make_stream = BINARY_STREAMS.get(stream) or REAL_STREAMS[stream]
    for seed in SEEDS:
        values = make_stream(np.random.default_rng(seed))
        ours = trace(make_detector(name, **params), values)
        theirs = trace(river_detector(river_drift, name, params), values)
        assert ours == theirs, f"seed {seed}"


def test_river_comparison_is_not_vacuous(river_drift: ModuleType) -> None:
    """Every oracle configuration detects something on some stream, and DDM warns, so the equality
    above compares detections, not two empty lists."""
    for config, (name, params) in ORACLE_CONFIGS.items():
        streams = BINARY_STREAMS if name == "ddm" else {**BINARY_STREAMS, **REAL_STREAMS}
        found = [trace(make_detector(name, **params), make(np.random.default_rng(0))) for make in streams.values()]
        assert any(drifts for drifts, _ in found), config
        if name == "ddm":
            assert any(warnings for _, warnings in found), config


def test_adwin_window_matches_river_step_by_step(river_drift: ModuleType) -> None:
    values = repeated_bernoulli(np.random.default_rng(4))
    ours, theirs = ADWIN(clock=4), river_drift.ADWIN(clock=4)
    for x in values.tolist():
        ours.update(x)
        theirs.update(x)
        # River's ``variance`` is the window's sum of squared deviations; ours divides it by the width
        assert (ours.width, ours.estimation, ours.variance) == (
            theirs.width,
            theirs.estimation,
            theirs.variance / theirs.width,
        )


# --- properties, without River ---------------------------------------------------------------------
# (detector, parameters, the most rows after the change it may take). The settings are ones whose
# false-alarm rate is low: over 200 seeds, none (ADWIN, Page-Hinkley "up") or 1 in 200 (DDM with
# drift_threshold=4) fired on the stationary part; the bounds are about twice the worst delay seen.
PROPERTY_CONFIGS: dict[str, tuple[str, dict[str, Any], int]] = {
    "adwin": ("adwin", {}, 300),
    "page_hinkley": ("page_hinkley", {"mode": "up"}, 500),
    "ddm": ("ddm", {"warm_start": 300, "drift_threshold": 4.0}, 700),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("config", list(PROPERTY_CONFIGS))
def test_fires_soon_after_an_abrupt_change_and_not_before(config: str, seed: int) -> None:
    name, params, max_delay = PROPERTY_CONFIGS[config]
    found = update_many(make_detector(name, **params), abrupt_bernoulli(np.random.default_rng(seed)))
    assert found, "the change was missed"
    assert CHANGE <= found[0] <= CHANGE + max_delay


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("config", list(PROPERTY_CONFIGS))
def test_silent_on_a_long_stationary_stream(config: str, seed: int) -> None:
    name, params, _ = PROPERTY_CONFIGS[config]
    assert update_many(make_detector(name, **params), stationary_bernoulli(np.random.default_rng(seed))) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_adwin_on_real_valued_errors(seed: int) -> None:
    rng = np.random.default_rng(seed)
    found = update_many(ADWIN(), real_jump(rng))
    assert found and CHANGE <= found[0] <= CHANGE + 100
    assert update_many(ADWIN(), np.abs(rng.normal(size=10_000))) == []


def test_page_hinkley_modes_see_their_direction() -> None:
    worse = abrupt_bernoulli(np.random.default_rng(5))
    better = 1.0 - worse  # the same stream, the error rate falling at CHANGE
    assert update_many(PageHinkley(mode="up"), worse)
    assert update_many(PageHinkley(mode="down"), better)
    assert update_many(PageHinkley(mode="up"), better[: CHANGE + 1000]) == []


def test_ddm_warns_before_it_calls_drift() -> None:
    detector = DDM(warm_start=300, drift_threshold=4.0)
    warned = False
    for x in abrupt_bernoulli(np.random.default_rng(6)).tolist():
        detector.update(x)
        if detector.drift_detected:
            break
        warned |= detector.warning_detected
    assert detector.drift_detected and warned
    assert not detector.warning_detected  # a drift is not also a warning


@pytest.mark.parametrize("name", list(DETECTORS))
def test_drift_flag_is_for_one_update_and_n_counts_everything(name: str) -> None:
    detector = make_detector(name)
    assert (detector.n, detector.drift_detected) == (0, False)
    values = repeated_bernoulli(np.random.default_rng(7))
    found = update_many(detector, values)
    assert found and detector.n == len(values)  # n is not reset by a detection
    flags = []
    again = make_detector(name)
    for x in values.tolist():
        again.update(x)
        flags.append(again.drift_detected)
    assert np.flatnonzero(flags).tolist() == found


def test_adwin_window_and_estimation() -> None:
    detector = ADWIN()
    update_many(detector, np.full(100, 0.25))
    assert (detector.width, detector.estimation, detector.variance) == (100, 0.25, 0.0)
    assert ADWIN().estimation == 0.0
    update_many(detector, np.ones(3000))
    assert detector.estimation > 0.9 and detector.width < 3100  # the old values left the window


def test_adwin_max_buckets_of_one_does_not_crash() -> None:
    """River 0.26 panics here (it drops from an empty row); every row may empty when a row holds one."""
    found = update_many(ADWIN(max_buckets=1, clock=1, min_window_length=3), real_jump(np.random.default_rng(0)))
    assert found and found[0] >= CHANGE


# --- state round trip ------------------------------------------------------------------------------

ROUND_TRIP_PARAMS: dict[str, dict[str, Any]] = {
    "adwin": {"delta": 0.01, "clock": 8, "max_buckets": 4},
    "page_hinkley": {"threshold": 20.0, "mode": "both"},
    "ddm": {"warm_start": 100},
}


def resumed(state: dict[str, Any]) -> ConceptDriftDetector:
    """Through JSON text, as the database keeps it; no NaN or infinity may be in it."""
    return detector_from_state(json.loads(json.dumps(state, allow_nan=False)))


@pytest.mark.parametrize("name", list(DETECTORS))
def test_split_stream_resumes_exactly(name: str) -> None:
    params = ROUND_TRIP_PARAMS[name]
    values = repeated_bernoulli(np.random.default_rng(8))
    whole = make_detector(name, **params)
    expected = update_many(whole, values)
    assert len(expected) >= 2
    rng = np.random.default_rng(9)
    # random points, both ends, and the update right after a detection (the reset is still pending)
    splits = {0, len(values), expected[0] + 1, *rng.integers(0, len(values), 8).tolist()}
    for split in sorted(splits):
        first = make_detector(name, **params)
        head = update_many(first, values[:split])
        second = resumed(first.to_state())
        assert type(second) is type(first) and second.n == split
        tail = update_many(second, values[split:])
        assert head + [split + i for i in tail] == expected, f"split at {split}"
        assert second.to_state() == whole.to_state()


def test_from_state_refuses_another_detectors_state() -> None:
    state = ADWIN().to_state()
    with pytest.raises(DetectorError, match="not a ddm detector state"):
        DDM.from_state(state)
    assert isinstance(ADWIN.from_state(state), ADWIN)


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda s: s.update(version=99), id="version"),
        pytest.param(lambda s: s.update(detector="kswin"), id="unknown-detector"),
        pytest.param(lambda s: s["state"].pop("width"), id="missing-field"),
        pytest.param(lambda s: s["state"].update(width=7.0), id="width-mismatch"),
        pytest.param(lambda s: s["params"].update(delta=2.0), id="bad-param"),
    ],
)
def test_malformed_state_is_a_clear_error(corrupt: Callable[[dict[str, Any]], Any]) -> None:
    detector = ADWIN()
    update_many(detector, np.zeros(50))
    state = json.loads(json.dumps(detector.to_state()))
    corrupt(state)
    with pytest.raises(DetectorError):
        detector_from_state(state)


# --- bad names, parameters and values --------------------------------------------------------------


def test_unknown_detector_names_the_choices() -> None:
    choices = "choose one of adwin, ddm, page_hinkley"
    with pytest.raises(ValueError, match=f"unknown concept-drift detector 'kswin'; {choices}"):
        make_detector("kswin")


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("adwin", {"delta": 0}, r"delta must be a number in \(0, 1\)"),
        ("adwin", {"delta": 1.0}, r"delta must be a number in \(0, 1\)"),
        ("adwin", {"delta": float("nan")}, "delta"),
        ("adwin", {"clock": 0}, "clock must be an integer >= 1"),
        ("adwin", {"max_buckets": 2.5}, "max_buckets must be an integer"),
        ("adwin", {"grace_period": True}, "grace_period must be an integer"),
        ("adwin", {"window": 10}, "adwin has no parameter 'window'; its parameters are delta, clock"),
        ("page_hinkley", {"mode": "sideways"}, "mode must be one of 'up', 'down', 'both'"),
        ("page_hinkley", {"alpha": 0.0}, r"alpha must be a number in \(0, 1\]"),
        ("page_hinkley", {"threshold": -1}, "threshold"),
        ("ddm", {"warm_start": -1}, "warm_start must be an integer >= 0"),
        ("ddm", {"warning_threshold": 5.0}, "must not exceed drift_threshold"),
        ("ddm", {"delta": 0.1}, "ddm has no parameter 'delta'"),
    ],
)
def test_bad_parameters_are_value_errors(name: str, params: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_detector(name, **params)


@pytest.mark.parametrize("name", list(DETECTORS))
def test_a_bad_value_changes_nothing(name: str) -> None:
    detector = make_detector(name)
    update_many(detector, np.zeros(40))
    before = detector.to_state()
    batch = np.zeros(10)
    batch[5] = np.nan
    with pytest.raises(DetectorError, match="first at index 5"):
        update_many(detector, batch)
    with pytest.raises(DetectorError):
        detector.update(float("inf"))
    with pytest.raises(DetectorError, match="reads numbers"):
        detector.update("0.5")  # type: ignore[arg-type]
    with pytest.raises(DetectorError, match="1-D"):
        update_many(detector, np.zeros((2, 2)))
    assert detector.to_state() == before


def test_ddm_reads_only_values_between_0_and_1() -> None:
    with pytest.raises(DetectorError, match=r"\[0, 1\]"):
        DDM().update(2.0)
    with pytest.raises(DetectorError, match=r"\[0, 1\]"):
        update_many(DDM(), np.array([0.0, 1.0, -1.0]))
    assert update_many(DDM(), np.array([True, False, True])) == []  # booleans are 0/1 errors
