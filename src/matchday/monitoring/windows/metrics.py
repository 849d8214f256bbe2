"""The numbers a team reads off one window: computed from its summary once, stored beside it.

Names are flat (``latency_p99``, ``drift.amount``, ``class_share.1``, ``estimated_accuracy``) so a
monitor, the CLI, the API and Prometheus all name a metric the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from matchday.monitoring.drift import (
    ColumnSummary,
    DriftError,
    NumericSummary,
    column_mean,
    compare_summary_to_profile,
    sample_of_summary,
)
from matchday.monitoring.windows.performance import (
    CBPEEstimate,
    ClassificationPerformance,
    RegressionPerformance,
)
from matchday.monitoring.windows.summary import (
    OutputsSummary,
    VersionReference,
    WindowPerformance,
    WindowSummary,
    label_text,
)
from matchday.store import ReferenceProfile

SOFTWARE = ("rows", "requests", "throughput", "error_rate", "latency_p50", "latency_p95", "latency_p99")
OUTPUT = ("mean_confidence", "null_share", "prediction_drift", "prediction_drift_detected")
CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION = ("mae", "rmse", "r2", "mean_error")
ESTIMATED = tuple(f"estimated_{m}" for m in ("accuracy", "precision", "recall", "f1", "roc_auc"))
LABELS = ("labelled", "label_coverage", "label_delay_seconds", "concept_drift")
DATASET = ("drift_share", "drifted_features")
PER_FEATURE = ("drift", "drift_detected", "missing", "out_of_range", "unseen", "text_length", "text_words")
EXTRACTED = ("image_brightness",)  # the mean of an image's pixel inputs (monitoring.images names them)


def window_metrics(
    summary: WindowSummary,
    performance: WindowPerformance | None,
    ref: VersionReference | None,
    seconds: float,
    *,
    reuse_drift: dict[str, Any] | None = None,
    images: Sequence[str] = (),
    alpha: float | None = None,
) -> dict[str, float | None]:
    """Every metric of one window; ``seconds`` is the time the window covers so far (for throughput).

    ``reuse_drift``: earlier metrics of the same window whose drift numbers still stand (the drift tests
    are the costly part; a label landing, or a day window growing by a few rows, does not redo them).
    ``alpha``: the level of the p-value drift tests (default 0.05, Evidently's), stricter for a window
    that is tested again at every step (`matchday.monitoring.windows.summarizer.SLIDING_ALPHA`).
    """
    out: dict[str, float | None] = {}
    rows = int(summary["rows"])
    out["rows"] = float(rows)
    out["requests"] = float(summary["requests"])
    out["throughput"] = rows / seconds if seconds > 0 else None
    out["error_rate"] = summary["errors"] / rows if rows else None
    for q in (50, 95, 99):
        out[f"latency_p{q}"] = quantile(summary["latency"], q / 100)
    if reuse_drift is not None:
        out.update({k: v for k, v in reuse_drift.items() if _is_drift(k)})
    else:
        out.update(_inputs(summary, ref, alpha))
    out.update(_outputs(summary["outputs"], ref, drift=reuse_drift is None, alpha=alpha))
    if reuse_drift is not None:
        out["prediction_drift"] = reuse_drift.get("prediction_drift")
        out["prediction_drift_detected"] = reuse_drift.get("prediction_drift_detected")
    out.update(_performance(performance, summary, ref))
    out.update(extractor_metrics(summary, images))
    return {k: (None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v) for k, v in out.items()}


def quantile(column: NumericSummary, q: float) -> float | None:
    """A quantile of a numeric summary's sketch (within the sketch's 0.5% relative accuracy)."""
    if not column.get("count"):
        return None
    sample = sample_of_summary(column)
    return float(np.quantile(sample.values, q))  # type: ignore[union-attr]


def _inputs(summary: WindowSummary, ref: VersionReference | None, alpha: float | None) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    inputs = summary["inputs"]
    for name, column in inputs["columns"].items():
        total = column["count"] + column["missing"]
        out[f"missing.{name}"] = column["missing"] / total if total else None
    if ref is None or ref.profile is None or not inputs["rows"]:
        return out
    names = [n for n in ref.profile.get("columns", {}) if n in inputs["columns"] and inputs["columns"][n]["count"]]
    if not names:
        return out
    try:
        report = compare_summary_to_profile(
            ref.profile, inputs, columns=names, reference_samples=ref.drift_samples, alpha=alpha
        )
    except DriftError:
        return out
    for name, drift in report.columns.items():
        out[f"drift.{name}"] = drift.score
        out[f"drift_detected.{name}"] = 1.0 if drift.drifted else 0.0
        if drift.out_of_range_share is not None:
            out[f"out_of_range.{name}"] = drift.out_of_range_share
        if drift.unseen_share is not None:
            out[f"unseen.{name}"] = drift.unseen_share
    out["drift_share"] = len(report.drifted_columns) / len(report.columns)
    out["drifted_features"] = float(len(report.drifted_columns))
    return out


def _is_drift(name: str) -> bool:
    return name in DATASET or name.partition(".")[0] in PER_FEATURE


def _outputs(
    outputs: OutputsSummary, ref: VersionReference | None, *, drift: bool = True, alpha: float | None = None
) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    rows = outputs["rows"]
    out["null_share"] = outputs["null"] / rows if rows else None
    if "classes" in outputs:
        answered = sum(outputs["classes"].values())
        for name in ref.classes if ref and ref.classes else sorted(outputs["classes"]):
            out[f"class_share.{name}"] = outputs["classes"].get(str(name), 0) / answered if answered else None
    if outputs.get("confidence", {}).get("n"):
        out["mean_confidence"] = outputs["confidence"]["sum"] / outputs["confidence"]["n"]
    if "cbpe" in outputs:
        cbpe = outputs["cbpe"]  # its state, as stored (the estimate itself in a lazy summary)
        estimate = cbpe if isinstance(cbpe, CBPEEstimate) else CBPEEstimate.from_state(cbpe)
        for name, value in estimate.metrics().items():
            if name in ("accuracy", "precision", "recall", "f1", "roc_auc"):
                out[f"estimated_{name}"] = None if value is None else float(value)
    if drift:
        result = _prediction_drift(outputs, ref, alpha)
        out["prediction_drift"] = result[0] if result else None
        out["prediction_drift_detected"] = result[1] if result else None
    return out


def _prediction_drift(
    outputs: OutputsSummary, ref: VersionReference | None, alpha: float | None = None
) -> tuple[float, float] | None:
    """(score, 1 if drifted else 0) of the predictions against the reference's predictions."""
    if ref is None or ref.profile is None or "prediction" not in ref.profile:
        return None
    reference: Mapping[str, Any] = ref.profile["prediction"]
    column: ColumnSummary
    if "classes" in outputs:
        answered = sum(outputs["classes"].values())
        column = {"kind": "categorical", "count": answered, "missing": 0, "categories": outputs["classes"]}
        if reference["kind"] == "numeric" and "values" in reference:  # integer classes were profiled as numbers
            reference = {
                "kind": "categorical",
                "count": reference["count"],
                "missing": reference.get("missing", 0),
                "categories": {label_text(v): int(c) for v, c in zip(reference["values"], reference["value_counts"])},
            }
    elif "values" in outputs:
        column = outputs["values"]
    else:
        return None
    if not column["count"] or reference["kind"] != column["kind"]:
        return None
    profile = {"rows": ref.profile.get("rows", 0), "columns": {"prediction": reference}}
    try:
        report = compare_summary_to_profile(
            profile, {"rows": column["count"], "columns": {"prediction": column}}, alpha=alpha
        )
    except DriftError:
        return None
    drift = report.columns["prediction"]
    return drift.score, 1.0 if drift.drifted else 0.0


def _performance(
    performance: WindowPerformance | None, summary: WindowSummary, ref: VersionReference | None
) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    answered = summary["rows"] - summary["errors"]
    labelled = performance["labelled"] if performance else 0
    out["labelled"] = float(labelled)
    out["label_coverage"] = labelled / answered if answered else None
    out["label_delay_seconds"] = performance["delay_sum"] / labelled if performance and labelled else None
    if performance is None:
        return out
    out["concept_drift"] = 1.0 if performance.get("detections") else 0.0
    if "classification" in performance:
        metrics = ClassificationPerformance.from_state(performance["classification"]).metrics()
        for name in CLASSIFICATION:
            value = metrics.get(name)
            out[name] = None if value is None else float(value)
    elif "regression" in performance:
        metrics = RegressionPerformance.from_state(performance["regression"]).metrics()
        for name in REGRESSION:
            value = metrics.get(name)
            out[name] = None if value is None else float(value)
    return out


def known_metric(name: str, features: list[str] | None = None, classes: list[str] | None = None) -> bool:
    """Whether ``name`` is a metric windows have (a monitor on anything else is refused when declared)."""
    fixed = (*SOFTWARE, *OUTPUT, *CLASSIFICATION, *REGRESSION, *ESTIMATED, *LABELS, *DATASET, *EXTRACTED)
    if name in fixed:
        return True
    kind, _, rest = name.partition(".")
    if kind in PER_FEATURE and rest:
        return features is None or rest in features
    if kind == "class_share" and rest:
        return classes is None or rest in [str(c) for c in classes]
    return False


DATA_DRIFT_SHARE = 0.3  # the share of drifted inputs that the diagnosis calls data drift


def diagnose(metrics: dict[str, Any], reference: dict[str, Any] | None = None, *, tolerance: float = 0.05) -> str:
    """The rule a team reads from: inputs shifted is data drift; inputs unchanged but performance falling
    (the detector fired on the labelled errors, or accuracy is ``tolerance`` below the reference's) is
    concept drift; both can hold."""
    shifted = (metrics.get("drift_share") or 0.0) >= DATA_DRIFT_SHARE
    accuracy, expected = metrics.get("accuracy"), (reference or {}).get("accuracy")
    falling = bool(metrics.get("concept_drift")) or (
        accuracy is not None and expected is not None and accuracy < expected - tolerance
    )
    if shifted and falling:
        return "data drift and falling performance"
    if shifted:
        return "data drift"
    if falling:
        return "concept drift"
    return "stable"


def extractor_metrics(summary: WindowSummary, images: Sequence[str] = ()) -> dict[str, float | None]:
    """The extractors' features of a window: an image's brightness (the mean of its pixel inputs, so a
    camera that dims shows even when each pixel's own drift is small) and a text's length in
    characters and words."""
    out: dict[str, float | None] = {}
    columns = summary["inputs"]["columns"]
    pixels = [
        columns[c] for c in images if c in columns and columns[c].get("kind") == "numeric" and columns[c]["count"]
    ]
    if pixels:
        out["image_brightness"] = sum(column_mean(c) or 0.0 for c in pixels) / len(pixels)
    for name, sums in summary.get("texts", {}).items():
        out[f"text_length.{name}"] = sums["chars"] / sums["n"] if sums["n"] else None
        out[f"text_words.{name}"] = sums["words"] / sums["n"] if sums["n"] else None
    return out


def reference_brightness(profile: ReferenceProfile | None, images: Sequence[str]) -> float | None:
    """The reference's image brightness, from the profile's column means (the same mean of means)."""
    columns = profile.get("columns", {}) if profile else {}
    means = []
    for name in images:
        column = columns.get(name)
        if column is not None and column["kind"] == "numeric" and "mean" in column:
            means.append(column["mean"])
    return sum(means) / len(means) if means else None
