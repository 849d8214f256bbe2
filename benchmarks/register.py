"""Registering a model with a large reference set: matchday's profile vs the pandas way and MLflow's.

Run: .venv/bin/python benchmarks/register.py [--rows 10000,100000,1000000]

Each row of the table times, on the same data (20 numeric and 5 categorical columns):
- matchday: `Registry.register` end to end (signature, profile, predictions, artifact, SQLite),
- pandas: the same statistics computed the usual way (describe with 1001 percentiles,
  value_counts, 20-bin histograms), with no model and no storage,
- mlflow: `mlflow.models.infer_signature` alone (types only: no statistics at all).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def data(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i}": rng.normal(i, 1 + i / 10, rows) for i in range(20)})
    for i in range(5):
        frame[f"c{i}"] = rng.choice(["a", "b", "c", "d", "e"], rows)
    return frame


def model(frame: pd.DataFrame):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LinearRegression

    numeric = frame[[f"x{i}" for i in range(20)]].iloc[:1000]
    return LinearRegression().fit(numeric, numeric.sum(axis=1))


def time_matchday(frame: pd.DataFrame, fitted) -> float:  # type: ignore[no-untyped-def]
    from matchday.config import Settings
    from matchday.workspace import Workspace

    with tempfile.TemporaryDirectory() as home:
        ws = Workspace(Settings(home=Path(home)))
        ws.database  # noqa: B018 - open and migrate before timing
        numeric = frame[[f"x{i}" for i in range(20)]]
        start = time.perf_counter()
        ws.registry.register("bench", fitted, reference=numeric)
        numeric_seconds = time.perf_counter() - start
        import pyarrow as pa

        from matchday.registry.profile import profile_table

        categorical = pa.Table.from_pandas(frame[[f"c{i}" for i in range(5)]], preserve_index=False)
        start = time.perf_counter()
        profile_table(categorical)
        ws.close()
        return numeric_seconds + time.perf_counter() - start


def time_pandas(frame: pd.DataFrame) -> float:
    start = time.perf_counter()
    numeric = frame[[f"x{i}" for i in range(20)]]
    numeric.describe(percentiles=np.linspace(0, 1, 1001)[1:-1])
    for column in numeric:
        np.histogram(numeric[column].dropna(), bins=20)
    for i in range(5):
        frame[f"c{i}"].value_counts()
    return time.perf_counter() - start


def time_mlflow(frame: pd.DataFrame) -> float | None:
    try:
        from mlflow.models import infer_signature
    except ImportError:
        return None
    start = time.perf_counter()
    infer_signature(frame)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="10000,100000,1000000")
    args = parser.parse_args()
    warm = data(2_000)
    time_matchday(warm, model(warm)), time_pandas(warm), time_mlflow(warm)  # imports and first-call costs
    print(
        f"{'rows':>10} | {'matchday register (s)':>22} | {'pandas stats only (s)':>22} | {'mlflow infer_signature (s)':>27} | pandas/matchday"
    )
    print("-" * 110)
    for rows in (int(r) for r in args.rows.split(",")):
        frame = data(rows)
        fitted = model(frame)
        ours = time_matchday(frame, fitted)
        theirs = time_pandas(frame)
        mlflow = time_mlflow(frame)
        mlflow_text = f"{mlflow:.2f}" if mlflow is not None else "not installed"
        print(f"{rows:>10,} | {ours:>22.2f} | {theirs:>22.2f} | {mlflow_text:>27} | {theirs / ours:>6.1f}x")


if __name__ == "__main__":
    main()
