"""The drift engine: per-column tests, dataset drift, a multivariate check, raw-input extractors,
and a self-contained HTML report. Exact on raw data; against a stored profile, within documented bounds."""

from matchday.monitoring.drift.domain_classifier import domain_classifier_auc
from matchday.monitoring.drift.engine import (
    ColumnDrift,
    ColumnTest,
    DriftError,
    DriftReport,
    column_drift,
    compare_parquet_files,
    compare_summary_to_profile,
    compare_tables,
    compare_to_profile,
    prediction_drift,
)
from matchday.monitoring.drift.summary import CorruptSummary, column_mean, column_std, merge_summaries, summarize_table
from matchday.monitoring.drift.extractors import TextFeatures, image_features
from matchday.monitoring.drift.html_report import render_html
from matchday.monitoring.drift.statistics import (
    chi_square,
    js_distance,
    ks_2samp_sorted,
    psi,
    wasserstein_normed,
    wasserstein_sorted,
    z_test_proportions,
)

__all__ = [
    "ColumnDrift",
    "ColumnTest",
    "CorruptSummary",
    "DriftError",
    "DriftReport",
    "TextFeatures",
    "chi_square",
    "column_drift",
    "column_mean",
    "column_std",
    "compare_parquet_files",
    "compare_summary_to_profile",
    "compare_tables",
    "compare_to_profile",
    "domain_classifier_auc",
    "image_features",
    "js_distance",
    "merge_summaries",
    "ks_2samp_sorted",
    "prediction_drift",
    "psi",
    "render_html",
    "summarize_table",
    "wasserstein_normed",
    "wasserstein_sorted",
    "z_test_proportions",
]
