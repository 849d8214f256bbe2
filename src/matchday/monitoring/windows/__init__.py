"""Windows over the log (time, count, segments): their summaries, metrics and performance with late
labels, the comparison of two versions' arms, and the per-series failure isolation that keeps them going."""

from matchday.monitoring.windows.arm_comparison import (
    ArmComparison,
    ArmStats,
    ShadowReport,
    compare_arms,
    mean_difference_se,
    proportion_difference_se,
    shadow_report,
)
from matchday.monitoring.windows.failures import (
    FAILURES_KEY,
    FailureCount,
    Failures,
    SeriesFailure,
    failure_counts,
)
from matchday.monitoring.windows.metrics import (
    CLASSIFICATION,
    LABELS,
    REGRESSION,
    diagnose,
    known_metric,
    reference_brightness,
    window_metrics,
)
from matchday.monitoring.windows.names import (
    DEVICE,
    SOURCE,
    TIME_WIDTHS,
    UnknownWindow,
    WindowName,
    count_width,
    parse_segment,
    parse_window,
    segment_features,
    unkept_segment,
    unkept_window,
    window_names,
)
from matchday.monitoring.windows.performance import (
    Calibrator,
    CBPEEstimate,
    ClassificationPerformance,
    RegressionPerformance,
)
from matchday.monitoring.windows.series import MonitorKey, SeriesKey, join_key
from matchday.monitoring.windows.summarizer import (
    Summarizer,
    SummarizerConfig,
    describe,
)
from matchday.monitoring.windows.summarizer_state import SummarizerState
from matchday.monitoring.windows.summary import (
    OutputsSummary,
    VersionReference,
    WindowPerformance,
    WindowSummary,
    stored_performance,
    stored_summary,
)

__all__ = [
    "DEVICE",
    "SOURCE",
    "CLASSIFICATION",
    "FAILURES_KEY",
    "REGRESSION",
    "TIME_WIDTHS",
    "ArmComparison",
    "ArmStats",
    "CBPEEstimate",
    "Calibrator",
    "ClassificationPerformance",
    "FailureCount",
    "LABELS",
    "Failures",
    "MonitorKey",
    "RegressionPerformance",
    "SeriesFailure",
    "SeriesKey",
    "ShadowReport",
    "Summarizer",
    "SummarizerConfig",
    "VersionReference",
    "OutputsSummary",
    "SummarizerState",
    "WindowPerformance",
    "WindowSummary",
    "stored_performance",
    "stored_summary",
    "compare_arms",
    "UnknownWindow",
    "WindowName",
    "count_width",
    "parse_segment",
    "parse_window",
    "segment_features",
    "unkept_segment",
    "unkept_window",
    "window_names",
    "describe",
    "diagnose",
    "failure_counts",
    "join_key",
    "known_metric",
    "mean_difference_se",
    "proportion_difference_se",
    "reference_brightness",
    "shadow_report",
    "window_metrics",
]
