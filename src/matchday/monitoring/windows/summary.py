"""What one window of logged rows is reduced to: a JSON summary that merges by adding.

Two parts, kept apart because they change at different times: the summary of the rows as they were
logged (software, inputs, outputs, the estimate before labels), added to as rows arrive; and the
performance on labelled rows, recomputed when labels land in the window (labels come late, and may
be corrected).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict, cast

import numpy as np
import pyarrow as pa

from matchday.monitoring.drift import (
    ColumnSummary,
    NumericSummary,
    TableSummary,
    merge_summaries,
    summarize_coded,
    summarize_sketched,
    summarize_table,
)
from matchday.monitoring.log import LogColumns, label_text, to_datetime
from matchday.monitoring.windows.performance import (
    Calibrator,
    CBPEEstimate,
    CBPEState,
    ClassificationPerformance,
    ClassificationState,
    RegressionPerformance,
    RegressionState,
    label_indices,
)
from matchday.store import LoggedRow, MetricWindow, ReferenceProfile


class Confidence(TypedDict):
    """The top probability of each answered row, summed (their mean is the mean confidence)."""

    n: int
    sum: float


class OutputsSummary(TypedDict):
    rows: int  # answered rows
    null: int  # of them, answered without a prediction
    classes: NotRequired[dict[str, int]]  # a classifier's predictions by class
    confidence: NotRequired[Confidence]
    cbpe: NotRequired[CBPEState | CBPEEstimate]  # the estimate before labels; the object in a lazy summary
    values: NotRequired[NumericSummary]  # a regressor's predictions


class TextLengths(TypedDict):
    """A text input's present values, characters and words, as sums that add up."""

    n: float
    chars: float
    words: float


class Restarted(TypedDict):
    """Why a window holds fewer rows than it saw: its stored summary could not be merged, and was dropped."""

    at: str
    rows_dropped: int


class WindowSummary(TypedDict):
    """One window's logged rows, summarised (`summarize_columns`) and merged by adding (`merge_summary`): the
    ``summary`` of a stored window (`WindowStore`)."""

    rows: int
    errors: int  # rows the model failed on
    requests: int
    first_at: str | None  # ISO 8601, UTC
    last_at: str | None
    latency: NumericSummary  # seconds
    inputs: TableSummary  # of the answered rows
    outputs: OutputsSummary
    texts: NotRequired[dict[str, TextLengths]]  # the free-text inputs' lengths
    restarted: NotRequired[Restarted]
    drift_rows: NotRequired[int]  # the rows the stored drift metrics were computed on (the hour and day windows')
    step: NotRequired[str]  # a sliding window's newest pane's start (judged, not stored)


class WindowPerformance(TypedDict):
    """One window's labelled rows: their count, label delay and performance (by the version's task), and
    the concept-drift detections on them; the ``performance`` of a stored window."""

    labelled: int
    delay_sum: float  # seconds from prediction to label, summed
    delay_max: float
    detections: NotRequired[int]
    classification: NotRequired[ClassificationState]
    regression: NotRequired[RegressionState]


def stored_summary(window: MetricWindow) -> WindowSummary:
    """A stored window's summary, as the summarizer wrote it (the store keeps it as plain JSON)."""
    return cast(WindowSummary, window.summary)


def stored_performance(window: MetricWindow) -> WindowPerformance | None:
    return cast(WindowPerformance | None, window.performance)


@dataclass(frozen=True)
class VersionReference:
    """What the monitoring loop knows of a model version: its task, classes, and reference profile."""

    task: str  # classification | regression
    classes: list[str] | None
    features: list[str]
    profile: ReferenceProfile | None
    calibrator: Calibrator | None = None
    reference_metrics: dict[str, Any] | None = None  # performance on the reference's labelled sample
    drift_samples: dict[str, Any] = field(
        default_factory=dict, compare=False, repr=False
    )  # the profile's columns as drift samples, once

    @classmethod
    def from_profile(
        cls, task: str, classes: list[str] | None, features: list[str], profile: ReferenceProfile | None
    ) -> VersionReference:
        """With the reference's labelled sample (registered with a target): its performance, and a
        calibrator for the estimate before labels fitted on its probabilities."""
        sample = profile.get("labelled_sample") if profile else None
        if not sample or not sample.get("labels"):
            return cls(task, classes, features, profile)
        y_true = np.asarray([label_text(v) for v in sample["labels"]], dtype=object)
        if task == "classification" and classes:
            y_pred = np.asarray([label_text(v) for v in sample["predictions"]], dtype=object)
            proba = np.asarray(sample["probabilities"], dtype=np.float64) if sample.get("probabilities") else None
            if proba is not None and (proba.ndim != 2 or proba.shape[1] != len(classes)):
                proba = None
            metrics = ClassificationPerformance(classes).update(y_true, y_pred, proba).metrics()
            calibrator = None
            if proba is not None and len(set(y_true.tolist())) > 1:
                try:
                    calibrator = Calibrator.fit(classes, proba, y_true)
                except Exception:  # too few rows of a class to calibrate: the estimate uses the raw scores
                    calibrator = None
            return cls(task, classes, features, profile, calibrator, metrics)
        y = np.asarray([float(v) for v in sample["labels"]], dtype=np.float64)
        p = np.asarray([float(v) for v in sample["predictions"]], dtype=np.float64)
        return cls(task, classes, features, profile, None, RegressionPerformance().update(y, p).metrics())


def summarize_rows(rows: Sequence[LoggedRow], ref: VersionReference | None, texts: Sequence[str] = ()) -> WindowSummary:
    """`summarize_columns` of rows read as objects."""
    return summarize_columns(LogColumns.from_rows(rows, *_shape(ref)), ref, texts)


def columns_of_batch(table: pa.Table, ref: VersionReference | None) -> LogColumns:
    """A bulk read of one version's rows (`PredictionLogStore.batches_after`) parsed against its reference."""
    return LogColumns.from_table(table, *_shape(ref))


def summarize_columns(
    cols: LogColumns, ref: VersionReference | None, texts: Sequence[str] = (), *, lazy: bool = False
) -> WindowSummary:
    """One pass over rows as logged: counts, latency sketch, inputs, outputs, the CBPE estimate, and
    for the ``texts`` inputs their length (the text extractor; mergeable sums).

    ``lazy``: sketch buckets kept as arrays and the CBPE estimate as an object, for a summary that is
    merged with others before it is stored; `settled_summary` turns it into the stored form (the same
    summary as without ``lazy``, and merged the same)."""
    n = len(cols)
    ok = ~cols.failed
    # the rows of one request share its timestamp: a request is a distinct (time, answered) pair
    requests = _distinct(cols.at * 2 + ok) if n else 0
    answered = np.flatnonzero(ok)
    every = answered.size == n
    others = [name for name in cols.inputs.column_names if name not in cols.numeric]
    plain = [name for name in others if name not in cols.categories]  # neither numbers nor text
    by_name: dict[str, ColumnSummary] = {}
    if plain:
        table = cols.inputs.select(plain)
        by_name.update(summarize_table(table if every else table.take(pa.array(answered, type=pa.int64())))["columns"])
    by_name.update({name: summarize_coded(c, None if every else ok) for name, c in cols.categories.items()})
    by_name.update(
        {name: summarize_sketched(v, lazy=lazy, rows=None if every else ok) for name, v in cols.numeric.items()}
    )
    summary: WindowSummary = {
        "rows": n,
        "errors": int(n - answered.size),
        "requests": requests,
        "first_at": to_datetime(cols.at.min()).isoformat() if n else None,
        "last_at": to_datetime(cols.at.max()).isoformat() if n else None,
        "latency": summarize_sketched(cols.latency, lazy=lazy),
        "inputs": {
            "rows": int(answered.size) if cols.inputs.column_names else 0,
            "columns": {name: by_name[name] for name in cols.inputs.column_names},
        },
        "outputs": _outputs(cols, answered, ref, lazy=lazy),
    }
    if texts:
        rest = cols.inputs.select(others)
        rest = rest if every else rest.take(pa.array(answered, type=pa.int64()))
        summary["texts"] = {
            name: _text_lengths(rest.column(name).to_pylist() if name in rest.column_names else []) for name in texts
        }
    return summary


def _distinct(keys: np.ndarray) -> int:
    """How many distinct values: without a sort when they come in order (one writer's rows usually do)."""
    steps = np.diff(keys)
    if (steps >= 0).all():
        return int(np.count_nonzero(steps)) + 1
    return int(np.unique(keys).size)


def _text_lengths(values: Sequence[Any]) -> TextLengths:
    """Characters and words of a text input (what the text extractor watches), as sums that add up."""
    present = [str(v) for v in values if v is not None]
    return {
        "n": float(len(present)),
        "chars": float(sum(len(v) for v in present)),
        "words": float(sum(len(v.split()) for v in present)),
    }


def _shape(ref: VersionReference | None) -> tuple[list[str] | None, int | None]:
    """The inputs to expect (None: every key seen) and the probabilities' width (None: any)."""
    if ref is None:
        return None, None
    return ref.features, len(ref.classes) if ref.classes else None


def merge_summary(a: WindowSummary | None, b: WindowSummary) -> WindowSummary:
    """The summary of both windows' rows (``a`` may be None: a window not seen before)."""
    if a is None:
        return b
    out: WindowSummary = {
        "rows": a["rows"] + b["rows"],
        "errors": a["errors"] + b["errors"],
        "requests": a["requests"] + b["requests"],
        "first_at": min(v for v in (a["first_at"], b["first_at"]) if v) if a["first_at"] or b["first_at"] else None,
        "last_at": max(v for v in (a["last_at"], b["last_at"]) if v) if a["last_at"] or b["last_at"] else None,
        "latency": _merge_numeric(a["latency"], b["latency"]),
        "inputs": merge_summaries(a["inputs"], b["inputs"]),
        "outputs": _merge_outputs(a["outputs"], b["outputs"]),
    }
    if "texts" in a or "texts" in b:
        texts: dict[str, TextLengths] = {k: {**v} for k, v in a.get("texts", {}).items()}
        for name, sums in b.get("texts", {}).items():
            mine = texts.setdefault(name, {"n": 0.0, "chars": 0.0, "words": 0.0})
            mine["n"] += sums.get("n", 0.0)
            mine["chars"] += sums.get("chars", 0.0)
            mine["words"] += sums.get("words", 0.0)
        out["texts"] = texts
    if "restarted" in a or "restarted" in b:  # the window lost its earlier rows once (a corrupt summary): say so
        out["restarted"] = a["restarted"] if a.get("restarted") else b["restarted"]
    return out


def _merge_numeric(x: NumericSummary, y: NumericSummary) -> NumericSummary:
    """Two numeric columns (the latency, a regressor's predictions) merged as `merge_summaries` merges a
    table's: a numeric column stays numeric."""
    merged = merge_summaries({"rows": 0, "columns": {"x": x}}, {"rows": 0, "columns": {"x": y}})["columns"]["x"]
    return cast(NumericSummary, merged)


def _outputs(cols: LogColumns, answered: np.ndarray, ref: VersionReference | None, *, lazy: bool) -> OutputsSummary:
    codes = cols.codes[answered]
    predicted = cols.predicted[answered]
    out: OutputsSummary = {"rows": int(answered.size), "null": int(answered.size - predicted.sum())}
    classification = ref is not None and ref.task == "classification" and ref.classes
    if classification:
        per_code = np.bincount(codes[predicted], minlength=len(cols.labels))
        counts: dict[str, int] = {}
        for code in np.flatnonzero(per_code):
            label = cols.labels[code]
            if label is not None:  # two texts of one label ("1" and "1.0") count together
                counts[label] = counts.get(label, 0) + int(per_code[code])
        out["classes"] = counts
        rows = answered[predicted]
        if rows.size and cols.probabilities is not None and cols.has_probabilities[rows].all():
            proba = cols.probabilities[rows]
            # a probability is within [0, 1]: a model answering 1e300 (or NaN) cannot make the sum overflow
            top = np.where(np.isfinite(proba), np.clip(proba, 0.0, 1.0), 0.0).max(axis=1)
            out["confidence"] = {"n": int(proba.shape[0]), "sum": float(top.sum())}
            assert ref is not None and ref.classes is not None
            estimate = CBPEEstimate(ref.classes)
            calibrated = ref.calibrator.transform(proba) if ref.calibrator is not None else proba
            # each distinct prediction's class index, found once: the rows only look theirs up
            index = label_indices(np.asarray([label or "" for label in cols.labels], dtype=str), ref.classes)
            estimate.update_indexed(index[codes[predicted]], calibrated)
            out["cbpe"] = estimate if lazy else estimate.to_state()
    else:
        out["values"] = summarize_sketched(cols.values, lazy=lazy, rows=~cols.failed)
    return out


def settled_summary(summary: WindowSummary) -> WindowSummary:
    """A lazy summary (`summarize_columns` with ``lazy``, and merges of such) in its stored form: the
    CBPE estimate as its state. (Sketch buckets stay `Buckets`: the store writes them as lists.)"""
    outputs = summary["outputs"]
    estimate = outputs.get("cbpe")
    if isinstance(estimate, CBPEEstimate):
        return {**summary, "outputs": {**outputs, "cbpe": estimate.to_state()}}
    return summary


def _merge_outputs(a: OutputsSummary, b: OutputsSummary) -> OutputsSummary:
    out: OutputsSummary = {"rows": a["rows"] + b["rows"], "null": a["null"] + b["null"]}
    if "classes" in a or "classes" in b:
        counts = dict(a.get("classes", {}))
        for k, v in b.get("classes", {}).items():
            counts[k] = counts.get(k, 0) + v
        out["classes"] = counts
    if "confidence" in a or "confidence" in b:
        none: Confidence = {"n": 0, "sum": 0.0}
        x, y = a.get("confidence", none), b.get("confidence", none)
        out["confidence"] = {"n": x["n"] + y["n"], "sum": x["sum"] + y["sum"]}
    if "cbpe" in a and "cbpe" in b:
        p, q = a["cbpe"], b["cbpe"]
        if isinstance(p, CBPEEstimate) and isinstance(q, CBPEEstimate):  # lazy: the states round-trip exactly
            out["cbpe"] = p.merge(q)
        else:
            p = p if isinstance(p, CBPEEstimate) else CBPEEstimate.from_state(p)
            q = q if isinstance(q, CBPEEstimate) else CBPEEstimate.from_state(q)
            out["cbpe"] = p.merge(q).to_state()
    elif "cbpe" in a or "cbpe" in b:
        out["cbpe"] = a["cbpe"] if a.get("cbpe") else b["cbpe"]
    if "values" in a or "values" in b:
        if "values" in a and "values" in b:
            out["values"] = _merge_numeric(a["values"], b["values"])
        else:
            out["values"] = a["values"] if a.get("values") else b["values"]
    return out


# -- performance on labelled rows ----------------------------------------------------------------
def performance_of(rows: Sequence[LoggedRow], ref: VersionReference | None) -> WindowPerformance | None:
    """Performance state of a window's labelled rows, with label coverage and delay; None if none labelled."""
    labelled = [r for r in rows if r.label_at is not None and r.error is None and r.prediction is not None]
    if not labelled:
        return None
    delays = np.asarray([(r.label_at - r.at).total_seconds() for r in labelled if r.label_at is not None])
    out: WindowPerformance = {
        "labelled": len(labelled),
        "delay_sum": float(np.clip(delays, 0, None).sum()),
        "delay_max": float(delays.max(initial=0.0)),
    }
    if ref is not None and ref.task == "classification" and ref.classes:
        perf = ClassificationPerformance(ref.classes)
        y_true = np.asarray([label_text(r.label) for r in labelled], dtype=object)
        y_pred = np.asarray([label_text(r.prediction) for r in labelled], dtype=object)
        probas = [r.probabilities for r in labelled]
        proba = (
            np.asarray(probas, dtype=np.float64)
            if all(p is not None and len(p) == len(ref.classes) for p in probas)
            else None
        )
        perf.update(y_true, y_pred, proba)
        out["classification"] = perf.to_state()
    else:
        y_true = np.asarray([_number(r.label) for r in labelled], dtype=np.float64)
        y_pred = np.asarray([_number(r.prediction) for r in labelled], dtype=np.float64)
        out["regression"] = RegressionPerformance().update(y_true, y_pred).to_state()
    return out


def merge_performance(a: WindowPerformance | None, b: WindowPerformance | None) -> WindowPerformance | None:
    if a is None or b is None:
        return a or b
    out: WindowPerformance = {
        "labelled": a["labelled"] + b["labelled"],
        "delay_sum": a["delay_sum"] + b["delay_sum"],
        "delay_max": max(a["delay_max"], b["delay_max"]),
        "detections": a.get("detections", 0) + b.get("detections", 0),
    }
    if "classification" in a and "classification" in b:
        out["classification"] = (
            ClassificationPerformance.from_state(a["classification"])
            .merge(ClassificationPerformance.from_state(b["classification"]))
            .to_state()
        )
    elif "regression" in a and "regression" in b:
        out["regression"] = (
            RegressionPerformance.from_state(a["regression"])
            .merge(RegressionPerformance.from_state(b["regression"]))
            .to_state()
        )
    elif "classification" in b:  # the version's task changed between windows: keep the newer
        out["classification"] = b["classification"]
    elif "regression" in b:
        out["regression"] = b["regression"]
    return out


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
