"""Monitoring: the prediction log (a batched writer that loses nothing) and, later, windows,
metrics, drift and alerts over it."""

from matchday.monitoring.drift import (
    ColumnDrift,
    ColumnTest,
    DriftError,
    DriftReport,
    TextFeatures,
    compare_tables,
    compare_to_profile,
    image_features,
    render_html,
)
from matchday.monitoring.prediction_log import PredictionLogWriter, WriterStats, json_safe

__all__ = [
    "ColumnDrift",
    "ColumnTest",
    "DriftError",
    "DriftReport",
    "PredictionLogWriter",
    "TextFeatures",
    "WriterStats",
    "compare_tables",
    "compare_to_profile",
    "image_features",
    "json_safe",
    "render_html",
]
