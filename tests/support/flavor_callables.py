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


HANG_FLAG_ENV = "MATCHDAY_TEST_HANG_FILE"
HANG_AMOUNT = 666.0


def hang_on_666(frame: pd.DataFrame) -> np.ndarray:
    """A regression model that hangs on a row of amount 666 for as long as the file that
    ``MATCHDAY_TEST_HANG_FILE`` names exists (two minutes at most); other rows: half the amount."""
    import os
    import time
    from pathlib import Path

    if (frame["amount"] == HANG_AMOUNT).any():
        flag = Path(os.environ[HANG_FLAG_ENV])
        deadline = time.monotonic() + 120
        while flag.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return frame["amount"].fillna(0).to_numpy() * 0.5


def slow_half(frame: pd.DataFrame) -> np.ndarray:
    """Half the amount, in 0.3 s a call: requests pile up behind it."""
    import time

    time.sleep(0.3)
    return frame["amount"].fillna(0).to_numpy() * 0.5
