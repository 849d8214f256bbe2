"""Callable "models" for benchmarks/shadow.py, registered by import path (``shadow_models:...``).

The server imports this module, so benchmarks/shadow.py puts this folder on its PYTHONPATH.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd

WAIT_MS = "MATCHDAY_BENCH_SHADOW_WAIT_MS"  # set by benchmarks/shadow.py to 10x the primary's per-call time


def remote_lookup(frame: pd.DataFrame) -> np.ndarray:
    """Slow by waiting: one round trip to a (simulated) remote feature store per call, then a rule.

    The wait releases the GIL and uses no CPU, like a model that spends its time on the network.
    """
    time.sleep(float(os.environ.get(WAIT_MS, "50")) / 1000)
    return (frame["amount"].to_numpy() > 100).astype(np.int64)
