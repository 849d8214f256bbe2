"""A scripted prediction stream with a known data-drift point and a known concept-drift point.

Rows come from the breast-cancer data (seeded): stationary, then inputs shifted (data drift) for a
stretch, then inputs back to normal but labels no longer following the model (concept drift).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from support.rollout_support import cancer_frame, fitted

DRIFTED_FEATURES = [
    "mean radius",
    "mean texture",
    "mean perimeter",
    "mean area",
    "mean smoothness",
    "mean compactness",
    "mean concavity",
    "mean concave points",
    "mean symmetry",
    "mean fractal dimension",
    "radius error",
    "texture error",
    "perimeter error",
    "area error",
]


@dataclass
class Stream:
    frame: pd.DataFrame  # inputs, in order
    predictions: np.ndarray
    probabilities: np.ndarray
    labels: np.ndarray  # the ground truth that will arrive
    data_drift: tuple[int, int]  # [start, end) rows with shifted inputs
    concept_drift: int  # from this row on, labels no longer follow the model


def scripted_stream(*, stationary: int, drifted: int, after: int, seed: int = 7, flip: float = 0.4) -> Stream:
    X, y = cancer_frame()
    model, _ = fitted("base")
    rng = np.random.default_rng(seed)
    n = stationary + drifted + after
    picks = rng.integers(0, len(X), n)
    frame = X.iloc[picks].reset_index(drop=True).copy()
    truth = y.iloc[picks].to_numpy().copy()
    lo, hi = stationary, stationary + drifted
    frame.loc[lo : hi - 1, DRIFTED_FEATURES] = frame.loc[lo : hi - 1, DRIFTED_FEATURES] * 1.6
    predictions = model.predict(frame)
    probabilities = model.predict_proba(frame)
    at = np.arange(n)
    base_error = float(np.mean(truth[:lo] != predictions[:lo]))  # the model is right ~98% of the time
    # shifted inputs, the same relation to the outcome: the model stays as right as before (data drift only)
    shifted = (at >= lo) & (at < hi)
    labels = np.where(shifted, np.where(rng.random(n) < base_error, 1 - predictions, predictions), truth)
    concept = hi
    flipped = (at >= concept) & (rng.random(n) < flip)
    labels = np.where(flipped, 1 - predictions, labels)  # the world changed: the same inputs, other outcomes
    return Stream(frame, predictions, probabilities, labels, (lo, hi), concept)


def log_rows(
    stream: Stream,
    start: int,
    end: int,
    *,
    deployment: str,
    model: str,
    version: int,
    at: datetime,
    spacing: timedelta = timedelta(milliseconds=100),
) -> list[dict[str, Any]]:
    """Prediction-log rows for stream rows [start, end), as the server would log them."""
    rows = []
    records = stream.frame.iloc[start:end].to_dict("records")
    for i, record in zip(range(start, end), records):
        rows.append(
            {
                "request_id": str(uuid.UUID(int=i + 1)),
                "entity_id": f"e{i}",
                "deployment": deployment,
                "model": model,
                "version": version,
                "at": at + spacing * (i - start),
                "inputs": record,
                "prediction": int(stream.predictions[i]),
                "probabilities": stream.probabilities[i].tolist(),
                "latency_seconds": 0.01,
                "routing": {"plan": "single"},
                "role": "served",
                "error": None,
                "shadow_of": None,
            }
        )
    return rows
