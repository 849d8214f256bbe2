"""Plain functions registered by import path in the callable-flavor tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def score(frame: pd.DataFrame) -> np.ndarray:
    """A hand-written rule: large amounts or online purchases are flagged."""
    return ((frame["amount"].fillna(0) > 30) | frame["online"]).astype(int).to_numpy()


def score_proba(frame: pd.DataFrame) -> np.ndarray:
    p = 1 / (1 + np.exp(-(frame["amount"].fillna(0).to_numpy() - 30) / 10))
    return np.column_stack([1 - p, p])


def regress(frame: pd.DataFrame) -> np.ndarray:
    return frame["amount"].fillna(0).to_numpy() * 0.5 + frame["hour"].to_numpy()


def broken(frame: pd.DataFrame) -> np.ndarray:
    raise ValueError("this model is broken")


NOT_CALLABLE = 42


def sometimes_nan(frame: pd.DataFrame) -> np.ndarray:
    """A regression model that answers NaN for large amounts (it happens)."""
    out = frame["amount"].fillna(0).to_numpy() * 0.5
    return np.where(out > 100, np.nan, out)
