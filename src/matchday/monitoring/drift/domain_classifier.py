"""Multivariate drift: can a classifier tell reference rows from current rows?

A cross-validated ROC AUC near 0.5 means the two sets look alike; well above it means they
differ, possibly in a way no single column shows (a changed correlation, say).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

DEFAULT_AUC_THRESHOLD = 0.55
MAX_ROWS_PER_SIDE = 10_000


def domain_classifier_auc(
    reference: pa.Table, current: pa.Table, *, threshold: float = DEFAULT_AUC_THRESHOLD, folds: int = 5, seed: int = 0
) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    rng = np.random.default_rng(seed)
    ref = _sample(reference, rng)
    cur = _sample(current, rng)
    X, categorical = _encode(
        pa.concat_tables([ref, cur.cast(ref.schema)]) if cur.schema != ref.schema else pa.concat_tables([ref, cur])
    )
    y = np.concatenate([np.zeros(ref.num_rows), np.ones(cur.num_rows)])
    model = HistGradientBoostingClassifier(max_iter=100, categorical_features=categorical or None, random_state=seed)
    scores = cross_val_score(model, X, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed), scoring="roc_auc")
    auc = float(scores.mean())
    return {
        "test": "domain_classifier_roc_auc",
        "roc_auc": auc,
        "roc_auc_std": float(scores.std()),
        "threshold": threshold,
        "drifted": auc > threshold,
        "rows_per_side": [ref.num_rows, cur.num_rows],
    }


def _sample(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    if table.num_rows <= MAX_ROWS_PER_SIDE:
        return table
    return table.take(np.sort(rng.choice(table.num_rows, MAX_ROWS_PER_SIDE, replace=False)))


def _encode(table: pa.Table) -> tuple[np.ndarray, list[int]]:
    """Numbers as they are (NaN for missing); categories as integer codes the model treats as categories."""
    columns, categorical = [], []
    for i, name in enumerate(table.column_names):
        column = table.column(name)
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            columns.append(column.cast(pa.float64()).to_numpy(zero_copy_only=False))
        else:
            encoded = column.cast(pa.string()).dictionary_encode().combine_chunks()
            codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.float64)
            codes[np.asarray(encoded.is_null())] = np.nan
            codes[codes >= 250] = 250  # HistGradientBoosting takes at most 255 categories
            columns.append(codes)
            categorical.append(i)
    return np.column_stack(columns), categorical
