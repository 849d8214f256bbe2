"""Small models and inputs for the batch scoring tests (callables are registered by import path, so a
CLI subprocess with ``tests/`` on its path loads them too)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

FEATURES = ["f0", "f1", "f2", "count"]
POISON = 666.0  # `poisoned` raises on any row whose f0 is this


def frame(rows: int, seed: int = 0, start: int = 0) -> pd.DataFrame:
    """Float and integer features, and an id column ``key`` (text, unique from ``start``)."""
    rng = np.random.default_rng(seed)
    out = pd.DataFrame({f"f{i}": rng.normal(size=rows) for i in range(3)})
    out["count"] = rng.integers(0, 10, rows)
    out.insert(0, "key", [f"k{i}" for i in range(start, start + rows)])
    return out


def fitted_classifier() -> Any:
    from sklearn.linear_model import LogisticRegression

    x = frame(500, seed=1)[FEATURES]
    return LogisticRegression().fit(x, (x["f0"] + x["f1"] > 0).astype(int))


def register(ws: Any, name: str = "clf", model: Any = None, **kwargs: Any) -> Any:
    """Register ``model`` (default: the fitted classifier) with a reference of `FEATURES`."""
    return ws.registry.register(
        name, model if model is not None else fitted_classifier(), reference=frame(300, seed=2)[FEATURES], **kwargs
    )


def write_parts(folder: Path, frames: list[pd.DataFrame], row_group_size: int | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        pq.write_table(
            pa.Table.from_pandas(f, preserve_index=False),
            folder / f"part-{i:03d}.parquet",
            row_group_size=row_group_size,
        )
    return folder


def poisoned(data: pd.DataFrame) -> np.ndarray:
    """A rule that raises on any batch holding the poison value (as a model does on an input it cannot take)."""
    if (data["f0"] == POISON).any():
        raise ValueError("cannot score f0 = 666")
    return (data["f0"] > 0).astype(int).to_numpy()


def poisoned_proba(data: pd.DataFrame) -> np.ndarray:
    if (data["f0"] == POISON).any():
        raise ValueError("cannot score f0 = 666")
    p = 1 / (1 + np.exp(-data["f0"].to_numpy()))
    return np.column_stack([1 - p, p])


def slow(data: pd.DataFrame) -> np.ndarray:
    """`poisoned`'s rule, 50 ms a call: a job slow enough to be killed in the middle."""
    time.sleep(0.05)
    return (data["f0"] > 0).astype(int).to_numpy()
