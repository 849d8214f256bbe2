"""matchday flags the same columns as Evidently's DataDriftPreset run with the same tests and thresholds.

Runs when the ``evidently`` extra is installed (the dev extra installs it, so CI runs it).
"""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from matchday.monitoring.drift import ColumnTest, compare_tables

# Imported by the tests that use it, not at collection: importing evidently takes ~2.5 s, which every
# xdist worker paid while collecting, whether or not it then ran these tests.
pytestmark = pytest.mark.skipif(find_spec("evidently") is None, reason="the evidently extra is not installed")

NUMERIC = [f"x{i}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
SHIFTED = {"x0", "x1", "x2", "x3", "x4", "c0", "c1"}
# Evidently's ValueDrift method names, and matchday's test for each (Evidently's chi-square is the
# goodness-of-fit version, which matchday calls chisquare_gof)
METHODS = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare_gof",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
}
P_VALUES = {"ks", "chisquare_gof", "z"}


def benchmark_frames(rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """20 numeric and 5 categorical columns; 5 numeric and 2 categorical shifted in the current set."""
    rng = np.random.default_rng(seed)

    def frame(current: bool) -> pd.DataFrame:
        data = {}
        for i, name in enumerate(NUMERIC):
            shift = 0.3 if current and name in SHIFTED else 0.0
            scale = 1.5 if current and name == "x4" else 1.0
            data[name] = rng.normal(i + shift, scale, rows)
        for name in CATEGORICAL:
            shares = [0.55, 0.25, 0.15, 0.05] if current and name in SHIFTED else [0.4, 0.3, 0.2, 0.1]
            data[name] = rng.choice(["a", "b", "c", "d"], rows, p=shares)
        return pd.DataFrame(data)

    return frame(False), frame(True)


def evidently_results(ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, tuple[str, float, float]]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    out = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            out[config["column"]] = (METHODS[config["method"]], float(metric["value"]), float(config["threshold"]))
    return out


@pytest.mark.parametrize("rows", [800, 5000])
def test_same_columns_as_evidently(rows: int) -> None:
    ref, cur = benchmark_frames(rows, seed=rows)
    theirs = evidently_results(ref, cur)
    assert set(theirs) == set(NUMERIC + CATEGORICAL)
    tests = {name: ColumnTest(test, threshold) for name, (test, _, threshold) in theirs.items()}  # the same tests
    ours = compare_tables(pa.Table.from_pandas(ref), pa.Table.from_pandas(cur), tests=tests)

    def drifted(test: str, value: float, threshold: float) -> bool:
        return value < threshold if test in P_VALUES else value >= threshold

    their_drift = {name for name, result in theirs.items() if drifted(*result)}
    assert set(ours.drifted_columns) == their_drift
    assert SHIFTED <= their_drift  # both find every shifted column
    if rows > 1000:  # with distances, and nothing else; small samples also show the p-value tests' false alarms
        assert their_drift == SHIFTED
    for name, (test, value, _) in theirs.items():
        assert ours.columns[name].score == pytest.approx(value, rel=1e-6, abs=1e-9), (name, test)


def test_matchday_chooses_the_tests_evidently_chooses_except_chi_square() -> None:
    for rows in (800, 5000):
        ref, cur = benchmark_frames(rows, seed=1)
        theirs = evidently_results(ref, cur)
        ours = compare_tables(pa.Table.from_pandas(ref), pa.Table.from_pandas(cur))
        for name, (test, _, threshold) in theirs.items():
            expected = "chisquare" if test == "chisquare_gof" else test  # the two-sample version by default
            assert (ours.columns[name].test, ours.columns[name].threshold) == (expected, threshold), name
