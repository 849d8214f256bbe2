"""Deliberately broken "models" for the rollout demo and tests: a canary of one must roll back.

Registered by import path (the callable flavor), with the working version's signature.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def flag_everything(frame: pd.DataFrame) -> np.ndarray:
    """A bad release: a unit bug (cents read as dollars) makes every transaction look like fraud."""
    return np.ones(len(frame), dtype=np.int64)


def flag_everything_proba(frame: pd.DataFrame) -> np.ndarray:
    return np.column_stack([np.zeros(len(frame)), np.ones(len(frame))])


def crash(frame: pd.DataFrame) -> np.ndarray:
    """A release that cannot score at all (a missing file, a wrong library version)."""
    raise RuntimeError("model file for this release is missing a tensor")


def slow_copy(frame: pd.DataFrame) -> np.ndarray:
    """Flags large amounts, slowly (50 ms a call): a shadow that is much slower than the primary."""
    import time

    time.sleep(0.05)
    return (frame["amount"].to_numpy() > 100).astype(np.int64)
