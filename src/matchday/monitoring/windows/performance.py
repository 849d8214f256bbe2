"""Model performance per time window as mergeable accumulators: a 5-minute window's summary merges
into an hour and a day by adding, and a label that arrives late is added to the window its prediction
belongs to, without rereading rows.

Every accumulator has the same small face: ``update(...)`` with numpy arrays for a batch of rows
(returns ``self``), ``merge(other)`` (pure: a new object holding both windows), ``to_state()`` /
``from_state(state)`` (a compact JSON-able dict that round-trips exactly) and ``metrics()`` (a flat
dict; ``None`` where a metric is undefined, never NaN).

- :class:`ClassificationPerformance` keeps a confusion matrix, the log-loss sum and, per class,
  histograms of that class's predicted probability over fixed bins split by whether the row truly is
  that class, so ROC AUC needs no rows (ties within a bin count half, as the trapezoid does).
- :class:`RegressionPerformance` keeps error sums and the mean and spread of the truth.
- :class:`CBPEEstimate` estimates classification performance before labels arrive, in the manner of
  NannyML's confidence-based performance estimation (CBPE): each row contributes its (calibrated)
  probability of every true class to an expected confusion matrix. :class:`Calibrator` fits isotonic
  regression per class on reference data and applies it with ``numpy.interp`` alone.

Averaging: binary problems report the positive class, ``classes[1]``; multiclass problems the macro
average over the classes whose value is defined (scikit-learn's ``zero_division=np.nan``), with ROC
AUC one-vs-rest.

>>> import numpy as np
>>> a = ClassificationPerformance(["ham", "spam"]).update(
...     np.array(["spam", "ham", "spam"]), np.array(["spam", "ham", "ham"]), np.array([0.9, 0.2, 0.4]))
>>> b = ClassificationPerformance(["ham", "spam"]).update(np.array(["ham"]), np.array(["spam"]))
>>> day = ClassificationPerformance.from_state(a.to_state()).merge(b)
>>> m = day.metrics()
>>> m["n"], m["accuracy"], m["recall"], m["roc_auc"]
(4, 0.5, 0.5, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NotRequired, TypedDict

import numpy as np
import numpy.typing as npt

from matchday.monitoring.drift import (
    MAX_SCALE,
    scale_array,
    scale_down,
    scale_for,
    unscale,
)

BINS = 1000  # equal-width probability bins on [0, 1]: ROC AUC is exact up to ties within 0.001
EPS = 1e-15  # probabilities are clipped to [EPS, 1 - EPS] for the log loss

Metrics = dict[str, float | None]
Histograms = list[list[list[float]]]  # per class, ``[bin, a, b]`` for each bin where a or b is non-zero


class ClassificationState(TypedDict):
    """`ClassificationPerformance` as stored in a window's performance (``classification``)."""

    kind: Literal["classification"]
    classes: list[str]
    bins: int
    confusion: list[list[int]]  # [true, predicted], the last row and column the labels not in ``classes``
    scored: int
    log_loss_sum: float
    histograms: Histograms  # a: rows of the class, b: rows of another, by bin of P(class)


class RegressionState(TypedDict):
    """`RegressionPerformance` as stored in a window's performance (``regression``): the sums in units
    of ``2**scale`` (a state stored before they were scaled has no ``scale``: exponent 0)."""

    kind: Literal["regression"]
    n: int
    missing: int
    scale: NotRequired[int]
    sum_error: float
    sum_abs_error: float
    sum_sq_error: float
    sum_y: float
    m2_y: float


class CBPEState(TypedDict):
    """`CBPEEstimate` as stored in a window's summary (``outputs.cbpe``)."""

    kind: Literal["cbpe"]
    classes: list[str]
    bins: int
    n: int
    expected: list[list[float]]  # [true, predicted], the last column the predictions not in ``classes``
    histograms: Histograms  # a: rows, b: the sum of P(class), by bin of P(class)


class CalibrationCurve(TypedDict):
    x: list[float]
    y: list[float]


class CalibratorState(TypedDict):
    kind: Literal["calibrator"]
    classes: list[str]
    curves: list[CalibrationCurve]  # one for two classes (of ``classes[1]``), else one per class


class ClassificationPerformance:
    """Realised classification performance of one window: true labels joined to predictions.

    Labels not in ``classes`` (true or predicted) are never a match: such rows count as wrong and are
    reported in ``unknown_labels``; a row whose true label is unknown is a negative for every class'
    ROC AUC and is left out of the log loss (no probability column belongs to it).
    """

    kind = "classification"

    def __init__(self, classes: Sequence[str], bins: int = BINS) -> None:
        self.classes = _check_classes(classes)
        self.bins = _check_bins(bins)
        k = len(self.classes)
        self.confusion = np.zeros((k + 1, k + 1), dtype=np.int64)  # [true, predicted]; index k = unknown
        self.log_loss_sum = 0.0
        self.scored = 0  # rows with a known true label and finite probabilities: the log loss's denominator
        self.positives = np.zeros((k, self.bins), dtype=np.int64)  # [class, bin of P(class)]: rows of that class
        self.negatives = np.zeros((k, self.bins), dtype=np.int64)  # ... and rows of another class

    def update(
        self, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None = None
    ) -> ClassificationPerformance:
        """Add a batch of labelled rows. ``proba`` is n x k with columns in ``classes`` order (or, for a
        binary problem, the n probabilities of ``classes[1]``); rows with a non-finite probability are
        left out of the log loss and ROC AUC only."""
        k = len(self.classes)
        true = label_indices(y_true, self.classes)
        pred = label_indices(y_pred, self.classes)
        if true.shape != pred.shape:
            raise ValueError(f"y_true has {true.size} rows and y_pred {pred.size}")
        self.confusion += np.bincount(true * (k + 1) + pred, minlength=(k + 1) ** 2).reshape(k + 1, k + 1)
        if proba is None:
            return self
        p = _proba_matrix(proba, k, true.size)
        finite = np.isfinite(p).all(axis=1)
        p, true = p[finite], true[finite]
        known = true < k
        picked = p[known, true[known]]
        self.log_loss_sum += float(-np.log(np.clip(picked, EPS, 1 - EPS)).sum())
        self.scored += int(known.sum())
        flat = _bin_indices(p, self.bins) + np.arange(k) * self.bins  # n x k, one histogram per class
        is_class = true[:, None] == np.arange(k)
        self.positives += np.bincount(flat[is_class], minlength=k * self.bins).reshape(k, self.bins)
        self.negatives += np.bincount(flat[~is_class], minlength=k * self.bins).reshape(k, self.bins)
        return self

    def merge(self, other: ClassificationPerformance) -> ClassificationPerformance:
        _check_compatible(self, other)
        out = ClassificationPerformance(self.classes, self.bins)
        out.confusion = self.confusion + other.confusion
        out.log_loss_sum = self.log_loss_sum + other.log_loss_sum
        out.scored = self.scored + other.scored
        out.positives = self.positives + other.positives
        out.negatives = self.negatives + other.negatives
        return out

    def metrics(self) -> Metrics:
        k = len(self.classes)
        n = int(self.confusion.sum())
        tp = np.diag(self.confusion)[:k].astype(np.float64)
        out: Metrics = {"n": n, "accuracy": float(tp.sum()) / n if n else None}
        out.update(_rates(tp, self.confusion[:, :k].sum(axis=0), self.confusion[:k, :].sum(axis=1)))
        aucs = [_auc(self.positives[c], self.negatives[c]) for c in range(k)]
        out["roc_auc"] = aucs[1] if k == 2 else _mean(aucs)
        out["log_loss"] = self.log_loss_sum / self.scored if self.scored else None
        out["unknown_labels"] = int(self.confusion[k, :].sum() + self.confusion[:k, k].sum())
        out.update({f"support_{c}": int(s) for c, s in zip(self.classes, self.confusion[:k, :].sum(axis=1))})
        return out

    def to_state(self) -> ClassificationState:
        return {
            "kind": "classification",
            "classes": list(self.classes),
            "bins": self.bins,
            "confusion": self.confusion.tolist(),
            "scored": self.scored,
            "log_loss_sum": self.log_loss_sum,
            "histograms": [_sparse(self.positives[c], self.negatives[c]) for c in range(len(self.classes))],
        }

    @classmethod
    def from_state(cls, state: ClassificationState) -> ClassificationPerformance:
        _check_kind(state, cls.kind)
        out = cls(state["classes"], state["bins"])
        out.confusion = _array(state["confusion"], out.confusion.shape, np.int64)
        out.scored = int(state["scored"])
        out.log_loss_sum = float(state["log_loss_sum"])
        for c, rows in enumerate(_histograms(state, len(out.classes))):
            out.positives[c], out.negatives[c] = _dense(rows, out.bins, np.int64)
        return out


class RegressionPerformance:
    """Realised regression performance of one window. The error is ``y_pred - y_true``, so a positive
    ``mean_error`` means the model predicts too high. The truth's spread is kept as the sum of squared
    deviations from its mean and merged by Chan's formula: ``sum(y**2) - sum(y)**2 / n`` would cancel
    catastrophically for a target far from zero.

    The sums are kept in units of ``2**scale`` (`matchday.monitoring.drift.scaling`), ``scale`` the exponent
    that brings the largest truth or prediction into [0.5, 1): labels are the callers' (feedback), and a
    label of 1e200 squared, or the error between -1e308 and 1e308, would overflow to inf, which is
    stored as null and breaks every later merge of the window. A metric whose true value is beyond a
    float (an error of 1e308 on average) is None.
    """

    kind = "regression"
    SUMS = ("sum_error", "sum_abs_error", "sum_sq_error", "sum_y", "m2_y")

    def __init__(self) -> None:
        self.n = 0
        self.missing = 0  # rows left out because the truth or the prediction is not finite
        self.scale = 0  # the sums below are in units of 2**scale (the squared ones of 4**scale)
        self.sum_error = 0.0
        self.sum_abs_error = 0.0
        self.sum_sq_error = 0.0
        self.sum_y = 0.0
        self.m2_y = 0.0  # sum of (y - mean y)**2

    def update(self, y_true: np.ndarray, y_pred: np.ndarray) -> RegressionPerformance:
        y = np.asarray(y_true, dtype=np.float64).reshape(-1)
        pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
        if y.shape != pred.shape:
            raise ValueError(f"y_true has {y.size} rows and y_pred {pred.size}")
        finite = np.isfinite(y) & np.isfinite(pred)
        y, pred = y[finite], pred[finite]
        self.missing += int(finite.size - finite.sum())
        if not y.size:
            return self
        batch = RegressionPerformance()
        batch.scale = scale_for(max(float(np.abs(y).max()), float(np.abs(pred).max())))
        y, pred = scale_array(y, batch.scale), scale_array(pred, batch.scale)
        error = pred - y  # below 2 in magnitude: no overflow
        batch.n = int(y.size)
        batch.sum_error = float(error.sum())
        batch.sum_abs_error = float(np.abs(error).sum())
        batch.sum_sq_error = float(np.dot(error, error))
        batch.sum_y = float(y.sum())
        deviation = y - batch.sum_y / batch.n
        batch.m2_y = float(np.dot(deviation, deviation))
        self._add(batch)
        return self

    def _sums_at(self, k: int) -> list[float]:
        """The sums in units of ``2**k`` (k >= scale): exact, or underflowing towards 0."""
        return [
            scale_down(getattr(self, name), k - self.scale, power=2 if name in ("sum_sq_error", "m2_y") else 1)
            for name in self.SUMS
        ]

    def _add(self, other: RegressionPerformance) -> None:
        self.missing += other.missing
        if not other.n:
            return
        if not self.n:  # nothing to rescale: take the other's scale
            self.scale = other.scale
        k = max(self.scale, other.scale)
        mine, theirs = self._sums_at(k), other._sums_at(k)
        self.scale = k
        for name, a, b in zip(self.SUMS, mine, theirs):
            setattr(self, name, a + b)
        n = self.n + other.n
        if self.n:
            delta = theirs[3] / other.n - mine[3] / self.n  # the scaled means lie in (-1, 1)
            self.m2_y += delta * delta * (self.n / n) * other.n
        self.n = n

    def merge(self, other: RegressionPerformance) -> RegressionPerformance:
        _check_compatible(self, other)
        out = RegressionPerformance.from_state(self.to_state())
        out._add(other)
        return out

    def metrics(self) -> Metrics:
        n, k = self.n, self.scale
        out: Metrics = {"n": n, "missing": self.missing, "mae": None, "rmse": None, "mean_error": None, "r2": None}
        if n:  # the root before scaling back: finite wherever the errors are
            out.update(
                mae=_finite(unscale(self.sum_abs_error / n, k)),
                rmse=_finite(unscale(math.sqrt(self.sum_sq_error / n), k)),
                mean_error=_finite(unscale(self.sum_error / n, k)),
            )
        mean = self.sum_y / n if n else 0.0
        # zero variance, allowing for the rounding of a constant column's mean (both sides in the same units)
        if n >= 2 and self.m2_y > n * (1e-12 * mean) ** 2 and self.m2_y > 0:
            out["r2"] = _finite(1.0 - self.sum_sq_error / self.m2_y)  # a truth of almost no spread: beyond a float
        return out

    def to_state(self) -> RegressionState:
        return {
            "kind": "regression",
            "n": self.n,
            "missing": self.missing,
            "scale": self.scale,
            "sum_error": self.sum_error,  # the order of SUMS
            "sum_abs_error": self.sum_abs_error,
            "sum_sq_error": self.sum_sq_error,
            "sum_y": self.sum_y,
            "m2_y": self.m2_y,
        }

    @classmethod
    def from_state(cls, state: RegressionState) -> RegressionPerformance:
        """A stored state; one stored before sums were scaled has no ``scale`` (exponent 0). A sum that
        is null or not finite (what the overflow left) cannot be repaired: ValueError."""
        _check_kind(state, cls.kind)
        out = cls()
        out.n, out.missing, out.scale = int(state["n"]), int(state["missing"]), int(state.get("scale", 0))
        sums: Mapping[str, Any] = state  # read by name, as SUMS lists them
        for name in cls.SUMS:
            value = sums[name]
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"a regression state's {name} is {value!r}: the window's performance is lost")
            setattr(out, name, float(value))
        if not -MAX_SCALE <= out.scale <= MAX_SCALE:
            raise ValueError(f"a regression state's scale is {out.scale}")
        return out


class CBPEEstimate:
    """Estimated classification performance of one window before its labels arrive (CBPE).

    Fed predicted labels and probabilities only; the probabilities must be calibrated (pass them
    through :meth:`Calibrator.transform` first) or the estimate inherits the model's over- or
    under-confidence. Each row adds its probability of every true class to the expected confusion
    matrix; precision, recall and F1 are ratios of expected counts, as NannyML computes them. ROC AUC
    comes from per-class histograms where a bin's expected positives are the sum of ``p`` and its
    expected negatives the sum of ``1 - p``. Rows with a non-finite probability are left out.
    """

    kind = "cbpe"

    def __init__(self, classes: Sequence[str], bins: int = BINS) -> None:
        self.classes = _check_classes(classes)
        self.bins = _check_bins(bins)
        k = len(self.classes)
        self.n = 0
        self.expected = np.zeros((k, k + 1), dtype=np.float64)  # [true, predicted]; predicted index k = unknown
        self.rows = np.zeros((k, self.bins), dtype=np.int64)  # [class, bin of P(class)]
        self.mass = np.zeros((k, self.bins), dtype=np.float64)  # sum of P(class) over those rows

    def update(self, y_pred: np.ndarray, proba: np.ndarray) -> CBPEEstimate:
        return self.update_indexed(label_indices(y_pred, self.classes), proba)

    def update_indexed(self, pred: np.ndarray, proba: np.ndarray) -> CBPEEstimate:
        """`update` with each predicted label given as its index in ``classes`` (``len(classes)``: not
        one of them), for a caller that has mapped its few distinct labels once, not every row's."""
        k = len(self.classes)
        p = _proba_matrix(proba, k, pred.size)
        finite = np.isfinite(p).all(axis=1)
        if not finite.all():
            p, pred = p[finite], pred[finite]
        p = np.clip(p, 0.0, 1.0)  # a model's "probability" of 1e300 adds at most 1
        self.n += int(pred.size)
        for c in range(k):  # expected[c, j]: the sum of P(c) over the rows predicted j
            self.expected[c] += np.bincount(pred, weights=p[:, c], minlength=k + 1)
        flat = (_bin_indices(p, self.bins) + np.arange(k) * self.bins).ravel()
        self.rows += np.bincount(flat, minlength=k * self.bins).reshape(k, self.bins)
        self.mass += np.bincount(flat, weights=p.ravel(), minlength=k * self.bins).reshape(k, self.bins)
        return self

    def merge(self, other: CBPEEstimate) -> CBPEEstimate:
        _check_compatible(self, other)
        out = CBPEEstimate(self.classes, self.bins)
        out.n = self.n + other.n
        out.expected = self.expected + other.expected
        out.rows = self.rows + other.rows
        out.mass = self.mass + other.mass
        return out

    def metrics(self) -> dict[str, float | bool | None]:
        k = len(self.classes)
        tp = np.diag(self.expected[:, :k]).copy()
        out: dict[str, float | bool | None] = {
            "estimated": True,
            "n": self.n,
            "accuracy": float(tp.sum()) / self.n if self.n else None,
        }
        predicted = self.expected.sum(axis=0)  # the predicted counts: exact, whatever the probabilities
        out.update(_rates(tp, predicted[:k], self.expected.sum(axis=1)))
        aucs = [_auc(self.mass[c], np.maximum(self.rows[c] - self.mass[c], 0.0)) for c in range(k)]
        out["roc_auc"] = aucs[1] if k == 2 else _mean(aucs)
        return out

    def to_state(self) -> CBPEState:
        return {
            "kind": "cbpe",
            "classes": list(self.classes),
            "bins": self.bins,
            "n": self.n,
            "expected": self.expected.tolist(),
            "histograms": [_sparse(self.rows[c], self.mass[c]) for c in range(len(self.classes))],
        }

    @classmethod
    def from_state(cls, state: CBPEState) -> CBPEEstimate:
        _check_kind(state, cls.kind)
        out = cls(state["classes"], state["bins"])
        out.n = int(state["n"])
        out.expected = _array(state["expected"], out.expected.shape, np.float64)
        for c, rows in enumerate(_histograms(state, len(out.classes))):
            out.rows[c], out.mass[c] = _dense(rows, out.bins, np.float64)
        return out


class Calibrator:
    """Isotonic calibration per class, fitted on reference data (probabilities and true labels).

    Binary problems calibrate the probability of ``classes[1]`` and set the other column to its
    complement; multiclass problems calibrate every column one-vs-rest and renormalise each row to sum
    to 1. The fitted functions are kept as knots (``x``, ``y``) and applied with ``numpy.interp``,
    clipped at the ends: exactly scikit-learn's ``IsotonicRegression(out_of_bounds="clip").predict``.
    """

    kind = "calibrator"

    def __init__(self, classes: Sequence[str], knots: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        self.classes = _check_classes(classes)
        expected = 1 if len(self.classes) == 2 else len(self.classes)
        if len(knots) != expected:
            raise ValueError(f"{len(self.classes)} classes need {expected} calibration curves, got {len(knots)}")
        self.knots = [(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)) for x, y in knots]
        for x, y in self.knots:
            if x.ndim != 1 or x.shape != y.shape or not x.size:
                raise ValueError("each calibration curve needs matching, non-empty x and y")

    @classmethod
    def fit(cls, classes: Sequence[str], proba: np.ndarray, y_true: np.ndarray) -> Calibrator:
        """Fit on reference rows; rows with an unknown label or a non-finite probability are left out."""
        from sklearn.isotonic import (
            IsotonicRegression,  # imported on first use: heavy, and only fitting needs it
        )

        names = _check_classes(classes)
        k = len(names)
        true = label_indices(y_true, names)
        p = _proba_matrix(proba, k, true.size)
        keep = (true < k) & np.isfinite(p).all(axis=1)
        p, true = p[keep], true[keep]
        if not true.size:
            raise ValueError("no reference rows with a known label and finite probabilities to calibrate on")
        knots = []
        for c in [1] if k == 2 else range(k):
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
                p[:, c], (true == c).astype(np.float64)
            )
            knots.append(
                (np.asarray(iso.X_thresholds_, dtype=np.float64), np.asarray(iso.y_thresholds_, dtype=np.float64))
            )
        return cls(names, knots)

    def transform(self, proba: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, n x k (a 1-D binary input gives n x 2 as well)."""
        k = len(self.classes)
        p = _proba_matrix(proba, k, None)
        if k == 2:
            positive = np.interp(p[:, 1], *self.knots[0])
            return np.column_stack([1.0 - positive, positive])
        out = np.column_stack([np.interp(p[:, c], x, y) for c, (x, y) in enumerate(self.knots)])
        total = out.sum(axis=1, keepdims=True)
        # a row every curve sends to 0 has nothing to renormalise: it keeps its uncalibrated probabilities
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), p)

    def to_state(self) -> CalibratorState:
        return {
            "kind": "calibrator",
            "classes": list(self.classes),
            "curves": [{"x": x.tolist(), "y": y.tolist()} for x, y in self.knots],
        }

    @classmethod
    def from_state(cls, state: CalibratorState) -> Calibrator:
        _check_kind(state, cls.kind)
        return cls(state["classes"], [(np.asarray(c["x"]), np.asarray(c["y"])) for c in state["curves"]])


def label_indices(labels: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Each label's index in ``classes``, or ``len(classes)`` for a label not among them. Labels are
    compared as strings; whole-number floats (``1.0``) are read as integers first."""
    values = np.asarray(labels).reshape(-1)
    if values.dtype.kind == "O":  # mixed values, as JSON gives them: 1.0 is the label "1"
        text = np.array([str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in values], dtype=str)
    elif values.dtype.kind == "f":
        whole = np.isfinite(values) & (values == np.round(values))
        text = np.where(whole, np.where(whole, values, 0).astype(np.int64).astype(str), values.astype(str))
    else:
        text = values.astype(str)
    names = np.asarray(classes, dtype=str)
    order = np.argsort(names)
    position = np.searchsorted(names[order], text).clip(0, len(names) - 1)
    found = names[order][position] == text
    return np.where(found, order[position], len(names)).astype(np.int64)


def _check_classes(classes: Sequence[str]) -> list[str]:
    names = [str(c) for c in classes]
    if len(names) < 2:
        raise ValueError(f"a classification needs at least two classes, got {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"classes must be distinct, got {names}")
    return names


def _check_bins(bins: int) -> int:
    if int(bins) < 1:
        raise ValueError(f"bins must be positive, got {bins}")
    return int(bins)


def _check_kind(state: Mapping[str, Any], kind: str) -> None:
    if state.get("kind") != kind:
        raise ValueError(f"expected a {kind!r} state, got {state.get('kind')!r}")


def _check_compatible(a: Any, b: Any) -> None:
    if type(a) is not type(b):
        raise TypeError(f"cannot merge {type(a).__name__} with {type(b).__name__}")
    if getattr(a, "classes", None) != getattr(b, "classes", None) or getattr(a, "bins", None) != getattr(
        b, "bins", None
    ):
        raise ValueError("cannot merge windows with different classes or bins")


def _proba_matrix(proba: np.ndarray, k: int, n: int | None) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim == 1 and k == 2:
        p = np.column_stack([1.0 - p, p])
    if p.ndim != 2 or p.shape[1] != k or (n is not None and p.shape[0] != n):
        raise ValueError(
            f"probabilities must be {n if n is not None else 'n'} x {k} (one column per class), got {p.shape}"
        )
    return p


def _bin_indices(p: np.ndarray, bins: int) -> np.ndarray:
    return np.clip(np.floor(p * bins), 0, bins - 1).astype(np.int64)


def _rates(tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> Metrics:
    """Precision, recall and F1 from per-class true positives, predicted and actual counts: the
    positive class's (``classes[1]``) for two classes, else the macro average of the defined ones."""
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        recall = np.where(actual > 0, tp / actual, np.nan)
        f1 = np.where(predicted + actual > 0, 2 * tp / (predicted + actual), np.nan)
    if len(tp) == 2:
        return {"precision": _finite(precision[1]), "recall": _finite(recall[1]), "f1": _finite(f1[1])}
    return {"precision": _mean(precision.tolist()), "recall": _mean(recall.tolist()), "f1": _mean(f1.tolist())}


def _auc(positives: np.ndarray, negatives: np.ndarray) -> float | None:
    """ROC AUC from the score histograms of positives and negatives: the chance a random positive
    scores above a random negative, a tie (same bin) counting half."""
    pos, neg = positives.astype(np.float64), negatives.astype(np.float64)
    total = pos.sum() * neg.sum()
    if not total > 0:
        return None
    below = np.cumsum(neg) - neg
    return _finite(float(np.dot(pos, below + 0.5 * neg)) / total)


def _finite(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _mean(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None and math.isfinite(v)]
    return sum(defined) / len(defined) if defined else None


def _sparse(a: np.ndarray, b: np.ndarray) -> list[list[float]]:
    """Two histograms over the same bins as ``[bin, a, b]`` for every bin where either is non-zero."""
    nonzero = np.flatnonzero((a != 0) | (b != 0))
    # one (n, 3) float array listed at once (a triple per call was most of a tick's stored state); bin
    # indices and counts are exact as floats far past any real count, and `_dense` reads them back as such
    return np.column_stack([nonzero, a[nonzero], b[nonzero]]).astype(np.float64).tolist()


def _dense(rows: list[list[float]], bins: int, dtype: npt.DTypeLike) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.zeros(bins, dtype=np.int64), np.zeros(bins, dtype=dtype)
    if rows:
        triples = np.asarray(rows, dtype=np.float64)
        index = triples[:, 0].astype(np.int64)
        a[index] = triples[:, 1]
        b[index] = triples[:, 2]
    return a, b


def _histograms(state: ClassificationState | CBPEState, k: int) -> Histograms:
    histograms = state["histograms"]
    if len(histograms) != k:
        raise ValueError(f"state has {len(histograms)} histograms for {k} classes")
    return list(histograms)


def _array(values: Any, shape: tuple[int, ...], dtype: npt.DTypeLike) -> np.ndarray:
    out = np.asarray(values, dtype=dtype)
    if out.shape != shape:
        raise ValueError(f"state array has shape {out.shape}, expected {shape}")
    return out
