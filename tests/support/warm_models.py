"""The models of tests/serving/test_warm_ready.py (the callable flavor), importable by a server started with
``tests/`` on its path: in the server (where ``CALLS`` is set) each call is noted and waits at a gate file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

CALLS, GATE = "MATCHDAY_TEST_WARM_CALLS", "MATCHDAY_TEST_WARM_GATE"


def _called(name: str, frame: pd.DataFrame) -> None:
    """In the server: note the call, then wait (a minute at most) until the test opens the gate."""
    calls = os.environ.get(CALLS)
    if not calls:
        return
    with open(calls, "a") as out:
        out.write(f"{name} {len(frame)}\n")
    deadline = time.monotonic() + 60
    while not Path(os.environ[GATE]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def champion(frame: pd.DataFrame) -> np.ndarray:
    _called("champion", frame)
    return (frame["amount"].to_numpy() > 50).astype(int)


def candidate(frame: pd.DataFrame) -> np.ndarray:
    _called("candidate", frame)
    return (frame["amount"].to_numpy() > 60).astype(int)


def broken_here(frame: pd.DataFrame) -> np.ndarray:
    """Scores at registration, fails in the server, at once."""
    if os.environ.get(CALLS):
        raise RuntimeError("this version cannot score on this server")
    return np.zeros(len(frame), dtype=int)
