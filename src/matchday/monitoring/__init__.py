"""Monitoring: the prediction log (a batched writer that loses nothing), the drift engine, windows
and metrics over the log, performance with late labels, concept-drift detectors, monitors and alerts."""

from matchday.monitoring.arm_comparison import (
    ArmComparison,
    ArmStats,
    ShadowReport,
    compare_arms,
    mean_difference_se,
    proportion_difference_se,
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
from matchday.monitoring.alerting import AlertChange, AlertEngine, alert_body
from matchday.monitoring.concept_drift import (
    ADWIN,
    DDM,
    DETECTORS,
    ConceptDriftDetector,
    DetectorError,
    PageHinkley,
    detector_from_state,
    make_detector,
    update_many,
)
from matchday.monitoring.loop import LoopResult, MonitoringLoop
from matchday.monitoring.monitors import InvalidMonitor, MonitorSpec, default_monitors, parse_monitors
from matchday.monitoring.performance import CBPEEstimate, Calibrator, ClassificationPerformance, RegressionPerformance
from matchday.monitoring.prediction_log import PredictionLogWriter, WriterStats, json_safe
from matchday.monitoring.summarizer import TIME_WIDTHS, Summarizer, SummarizerConfig, count_width
from matchday.monitoring.webhooks import InvalidWebhook, WebhookSender
from matchday.monitoring.window_metrics import diagnose, known_metric, window_metrics
from matchday.monitoring.window_summary import VersionReference

__all__ = [
    "ADWIN",
    "DDM",
    "DETECTORS",
    "AlertChange",
    "AlertEngine",
    "CBPEEstimate",
    "Calibrator",
    "ClassificationPerformance",
    "ConceptDriftDetector",
    "DetectorError",
    "InvalidMonitor",
    "InvalidWebhook",
    "LoopResult",
    "MonitorSpec",
    "MonitoringLoop",
    "PageHinkley",
    "RegressionPerformance",
    "Summarizer",
    "SummarizerConfig",
    "TIME_WIDTHS",
    "VersionReference",
    "WebhookSender",
    "alert_body",
    "count_width",
    "default_monitors",
    "diagnose",
    "detector_from_state",
    "known_metric",
    "make_detector",
    "parse_monitors",
    "update_many",
    "window_metrics",
    "ArmComparison",
    "ArmStats",
    "ShadowReport",
    "compare_arms",
    "mean_difference_se",
    "proportion_difference_se",
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
