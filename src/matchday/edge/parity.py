"""The parity gate: the converted graph, run by the device's own scorer, must answer like the registered
model on the version's reference rows: the same labels, and probabilities (or a regressor's values)
within a stated absolute tolerance. Else the export fails saying on how many rows and by how much.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from matchday.edge.errors import ParityFailed
from matchday.registry import Predictor
from matchday_edge import OnnxScorer, Parity

_SHOWN = 3  # rows quoted in a failure


def check_parity(predictor: Predictor, scorer: OnnxScorer, table: pa.Table, tolerance: float, what: str) -> Parity:
    """`Parity` when ``scorer`` agrees with ``predictor`` on every row of ``table``; `ParityFailed` otherwise."""
    expected_labels, expected_proba = predictor.predict_with_proba(table)
    expected_labels = np.asarray(expected_labels)
    if expected_labels.ndim == 2 and expected_labels.shape[1] == 1:
        expected_labels = expected_labels.ravel()
    rows = [list(r) for r in zip(*(table.column(name).to_pylist() for name in scorer.names))]
    got = scorer.score(rows)
    regression = predictor.signature is not None and predictor.signature.output.task == "regression"
    problems: list[str] = []
    worst = 0.0
    bad_rows: set[int] = set()
    if regression:
        expected = expected_labels.astype(np.float64)
        difference = np.abs(got.labels.astype(np.float64) - expected)
        worst = float(np.nanmax(difference, initial=0.0))
        off = np.flatnonzero(~(difference <= tolerance * np.maximum(1.0, np.abs(expected))))
        if len(off):
            bad_rows.update(off.tolist())
            problems.append(
                f"{len(off)} predictions differ by more than {tolerance:g} (relative past 1; up to {worst:.3g}), "
                f"e.g. {_examples(off, expected, got.labels)}"
            )
    else:
        different = [
            i for i, (a, b) in enumerate(zip(expected_labels.tolist(), got.labels.tolist())) if not _same(a, b)
        ]
        if different:
            bad_rows.update(different)
            problems.append(f"{len(different)} labels differ, e.g. {_examples(different, expected_labels, got.labels)}")
    if expected_proba is not None:
        if got.probabilities is None or got.probabilities.shape != expected_proba.shape:
            shape = None if got.probabilities is None else got.probabilities.shape
            raise ParityFailed(
                f"{what} gives probabilities of shape {shape}; the registered model gives {expected_proba.shape}"
            )
        difference = np.abs(got.probabilities - expected_proba)
        worst = max(worst, float(np.nanmax(difference, initial=0.0)))
        off = np.flatnonzero((~(difference <= tolerance)).any(axis=1))
        if len(off):
            bad_rows.update(off.tolist())
            problems.append(f"probabilities differ by more than {tolerance:g} on {len(off)} rows (up to {worst:.3g})")
    if problems:
        raise ParityFailed(
            f"{what} does not answer like the registered model on {len(bad_rows)} of {table.num_rows} reference rows",
            problems,
        )
    return {"rows": table.num_rows, "tolerance": tolerance, "labels_equal": True, "max_abs_difference": worst}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float, bool)) and isinstance(b, (int, float, bool)):
        return float(a) == float(b)
    return str(a) == str(b)


def _examples(rows: Any, expected: np.ndarray, got: np.ndarray) -> str:
    want, have = expected.tolist(), got.tolist()
    shown = [f"row {i}: {want[i]!r} -> {have[i]!r}" for i in list(rows)[:_SHOWN]]
    return "; ".join(shown)
