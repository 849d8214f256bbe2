"""Monitoring: the prediction log (a batched writer that loses nothing), the drift engine, and,
later, windows, metrics and alerts over the log."""

from matchday.monitoring.arm_comparison import (
    ArmComparison,
    ArmStats,
    ShadowReport,
    compare_arms,
    shadow_report,
)
from matchday.monitoring.drift import (
    ColumnDrift,
    ColumnTest,
    DriftError,
    DriftReport,
    TextFeatures,
    compare_parquet_files,
    compare_summary_to_profile,
    compare_tables,
    compare_to_profile,
    image_features,
    merge_summaries,
    prediction_drift,
    render_html,
    summarize_table,
)
from matchday.monitoring.prediction_log import PredictionLogWriter, WriterStats, json_safe

__all__ = [
    "ArmComparison",
    "ArmStats",
    "ShadowReport",
    "compare_arms",
    "shadow_report",
    "ColumnDrift",
    "ColumnTest",
    "DriftError",
    "DriftReport",
    "PredictionLogWriter",
    "TextFeatures",
    "WriterStats",
    "compare_parquet_files",
    "compare_summary_to_profile",
    "compare_tables",
    "compare_to_profile",
    "image_features",
    "json_safe",
    "merge_summaries",
    "prediction_drift",
    "render_html",
    "summarize_table",
]
